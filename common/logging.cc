#include "common/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>

namespace sweep {
namespace {

// The %j flag: the log message escaped as the contents of a JSON string.
class JsonEscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& message, const std::tm&,
              spdlog::memory_buf_t& destination) override {
    for (const char c : message.payload) {
      switch (c) {
        case '"':
          destination.append(std::string_view("\\\""));
          break;
        case '\\':
          destination.append(std::string_view("\\\\"));
          break;
        case '\n':
          destination.append(std::string_view("\\n"));
          break;
        case '\r':
          destination.append(std::string_view("\\r"));
          break;
        case '\t':
          destination.append(std::string_view("\\t"));
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            fmt::format_to(std::back_inserter(destination), "\\u{:04x}", static_cast<int>(c));
          } else {
            destination.push_back(c);
          }
      }
    }
  }

  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JsonEscapedMessage>();
  }
};

}  // namespace

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
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JsonEscapedMessage>('j').set_pattern(
        R"({"time":"%Y-%m-%dT%H:%M:%S.%e","level":"%l","program":"%n","message":"%j"})");
    logger->set_formatter(std::move(formatter));
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
