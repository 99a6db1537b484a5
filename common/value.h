#ifndef SWEEP_COMMON_VALUE_H_
#define SWEEP_COMMON_VALUE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "nlohmann/json.hpp"

namespace sweep {

// One hyperparameter value as written in a grid file. Floats are IEEE doubles and keep
// their exact bits end to end.
using Value = std::variant<int64_t, double, std::string, bool>;

// A hyperparameter assignment, sorted by name.
using Assignment = std::vector<std::pair<std::string, Value>>;

// Formats a double with the fewest digits that parse back to the same bits ("0.4",
// "1e-05"). NaN and infinities print as "nan", "inf" and "-inf".
std::string FormatDouble(double value);

// Formats a value for people: integers and doubles as numbers, strings unquoted.
std::string FormatValue(const Value& value);

// Formats a value as JSON for messages: strings quoted and escaped, doubles with a
// fraction or exponent ("32.0"), so a double never reads as an integer. NaN and
// infinities print as in FormatDouble.
std::string FormatValueAsJson(const Value& value);

// Quotes and escapes `text` as a JSON string. Invalid UTF-8 becomes U+FFFD instead of
// raising nlohmann::json's type_error.
std::string QuoteJsonString(std::string_view text);

nlohmann::json ValueToJson(const Value& value);

// Canonical JSON of an assignment: an object with keys sorted and shortest round-trip
// numbers. Two equal assignments always give the same bytes.
std::string CanonicalJson(const Assignment& assignment);

}  // namespace sweep

#endif  // SWEEP_COMMON_VALUE_H_
