#ifndef SWEEP_COMMON_LOGGING_H_
#define SWEEP_COMMON_LOGGING_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "spdlog/fmt/fmt.h"

// Debian's Abseil defines its own string_view type; these let spdlog format it and
// absl::Status directly.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  auto format(absl::string_view value, fmt::format_context& context) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(value.data(), value.size()),
                                                    context);
  }
};

template <>
struct fmt::formatter<absl::Status> : fmt::formatter<fmt::string_view> {
  auto format(const absl::Status& status, fmt::format_context& context) const {
    const std::string text = status.ToString();
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(text), context);
  }
};

namespace sweep {

// Configures the default spdlog logger: `level` is one of trace, debug, info, warn, error,
// critical, off; `format` is "text" or "json" (one JSON object per line).
absl::Status SetUpLogging(std::string_view level, std::string_view format, std::string program);

}  // namespace sweep

#endif  // SWEEP_COMMON_LOGGING_H_
