#include "common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>

namespace sweep {

absl::Status SetUpLogging(std::string_view level, std::string_view format, std::string program) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(std::string(level));
  if (parsed == spdlog::level::off && level != "off") {
    return absl::InvalidArgumentError(
        "log level \"" + std::string(level) +
        "\" is invalid; use trace, debug, info, warn, error, critical or off");
  }
  auto logger = std::make_shared<spdlog::logger>(
      program, std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  if (format == "text") {
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %n: %v");
  } else if (format == "json") {
    // Messages are written as key=value text, which needs no escaping but quotes.
    logger->set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e","level":"%l","program":"%n","message":"%v"})");
  } else {
    return absl::InvalidArgumentError("log format \"" + std::string(format) +
                                      "\" is invalid; use text or json");
  }
  logger->set_level(parsed);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
  return absl::OkStatus();
}

}  // namespace sweep
