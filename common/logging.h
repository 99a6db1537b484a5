#ifndef SWEEP_COMMON_LOGGING_H_
#define SWEEP_COMMON_LOGGING_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace sweep {

// Configures the default spdlog logger: `level` is one of trace, debug, info, warn, error,
// critical, off; `format` is "text" or "json" (one JSON object per line).
absl::Status SetUpLogging(std::string_view level, std::string_view format, std::string program);

}  // namespace sweep

#endif  // SWEEP_COMMON_LOGGING_H_
