#include "common/search_space.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/hyperparameters.h"
#include "nlohmann/json.hpp"

namespace sweep {
namespace {

using Json = nlohmann::json;

// A list element with its spelling in the grid file, which error messages quote.
struct RawElement {
  Value value;
  std::string text;
};

struct RawParameter {
  std::string name;
  std::vector<RawElement> elements;
};

std::string ParameterSubject(const std::string& name) {
  return absl::StrCat("grid parameter ", QuoteJsonString(name));
}

std::string ElementSubject(const std::string& name, size_t index, absl::string_view text) {
  return absl::StrCat(ParameterSubject(name), ": element ", index, " (", text, ")");
}

// Line and column (both from 1) of the byte at `offset`, counting '\n' as a line end.
std::pair<size_t, size_t> LineAndColumn(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  const std::string_view before = text.substr(0, offset);
  const size_t line = 1 + std::count(before.begin(), before.end(), '\n');
  const size_t line_start = before.rfind('\n');
  const size_t column = line_start == std::string_view::npos ? offset + 1 : offset - line_start;
  return {line, column};
}

// The reason in an nlohmann::json parse error, without its "[json.exception...] parse
// error at line L, column C: " prefix, which the caller replaces with its own position.
absl::string_view ParseErrorReason(absl::string_view what) {
  const size_t column = what.find("column ");
  if (column != absl::string_view::npos) {
    const size_t colon = what.find(": ", column);
    if (colon != absl::string_view::npos) return what.substr(colon + 2);
  }
  const size_t bracket = what.find("] ");
  if (bracket != absl::string_view::npos) return what.substr(bracket + 2);
  return what;
}

// Whether a JSON number literal is written as an integer (no fraction, no exponent).
bool IsIntegerLiteral(std::string_view literal) {
  return literal.find_first_of(".eE") == std::string_view::npos;
}

// Whether the mantissa of a JSON number literal has a non-zero digit.
bool HasNonZeroMantissa(std::string_view literal) {
  const std::string_view mantissa = literal.substr(0, literal.find_first_of("eE"));
  return mantissa.find_first_of("123456789") != std::string_view::npos;
}

// Reads a grid file with nlohmann::json's SAX interface, which, unlike json::parse,
// reports every key of an object, so duplicate keys survive to be rejected. Records the
// parameters in file order and stops at the first JSON syntax error or shape error (a
// value that is not a list, or a list element that is not a scalar).
class GridSaxHandler final : public nlohmann::json_sax<Json> {
 public:
  explicit GridSaxHandler(std::string_view text) : text_(text) {}

  const absl::Status& status() const { return status_; }
  std::vector<RawParameter>& parameters() { return parameters_; }

  bool null() override { return Scalar(std::nullopt, "null", "null"); }
  bool boolean(bool value) override {
    return Scalar(Value(value), value ? "true" : "false", "a boolean");
  }
  bool number_integer(int64_t value) override {
    return Scalar(Value(value), std::to_string(value), "a number");
  }
  bool number_unsigned(uint64_t value) override {
    if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return IntegerOutOfRange(std::to_string(value));
    }
    return Scalar(Value(static_cast<int64_t>(value)), std::to_string(value), "a number");
  }
  bool number_float(double value, const std::string& literal) override;
  bool string(std::string& value) override {
    std::string text = QuoteJsonString(value);
    return Scalar(Value(std::move(value)), std::move(text), "a string");
  }
  bool binary(binary_t& /*value*/) override { return Scalar(std::nullopt, "", "binary data"); }
  bool start_object(std::size_t /*elements*/) override;
  bool key(std::string& name) override {
    parameters_.push_back({std::move(name), {}});
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t /*elements*/) override;
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t position, const std::string& last_token,
                   const nlohmann::detail::exception& error) override;

 private:
  // Depths: 0 outside the top-level value, 1 inside the top-level object, 2 inside a
  // parameter's list. Parsing stops before anything nests deeper.
  static constexpr int kTopLevel = 0;
  static constexpr int kInObject = 1;
  static constexpr int kInList = 2;

  bool Fail(std::string message) {
    status_ = absl::InvalidArgumentError(std::move(message));
    return false;
  }

  bool RejectTopLevel(absl::string_view kind) {
    return Fail(absl::StrCat("grid: the top-level JSON value is ", kind,
                             ", not an object; write an object that maps each hyperparameter "
                             "name to a list of values"));
  }

  bool RejectNotAList(absl::string_view kind) {
    return Fail(absl::StrCat(ParameterSubject(parameters_.back().name), ": the value is ", kind,
                             ", not a list; write the values as a list such as [1, 2]"));
  }

  std::string CurrentElementSubject(absl::string_view text) const {
    return ElementSubject(parameters_.back().name, parameters_.back().elements.size(), text);
  }

  bool IntegerOutOfRange(absl::string_view literal) {
    if (depth_ != kInList) return Scalar(std::nullopt, "", "a number");
    return Fail(absl::StrCat(CurrentElementSubject(literal),
                             " is outside the 64-bit integer range; use an integer from ",
                             std::numeric_limits<int64_t>::min(), " to ",
                             std::numeric_limits<int64_t>::max()));
  }

  // Handles a scalar event; `value` is nullopt for null and binary data.
  bool Scalar(std::optional<Value> value, std::string text, absl::string_view kind) {
    if (depth_ == kTopLevel) return RejectTopLevel(kind);
    if (depth_ == kInObject) return RejectNotAList(kind);
    if (!value) {
      return Fail(absl::StrCat(ParameterSubject(parameters_.back().name), ": element ",
                               parameters_.back().elements.size(), " is ", kind,
                               "; remove it or replace it with a value"));
    }
    parameters_.back().elements.push_back({std::move(*value), std::move(text)});
    return true;
  }

  std::string_view text_;
  int depth_ = kTopLevel;
  std::vector<RawParameter> parameters_;
  absl::Status status_;
};

bool GridSaxHandler::number_float(double value, const std::string& literal) {
  // nlohmann::json reads an integer literal outside uint64 as a double: reject it
  // instead of rounding it.
  if (IsIntegerLiteral(literal)) return IntegerOutOfRange(literal);
  if (value == 0 && HasNonZeroMantissa(literal) && depth_ == kInList) {
    return Fail(absl::StrCat(CurrentElementSubject(literal),
                             " is too small for a double and would read as 0; write 0 or a "
                             "number of larger magnitude"));
  }
  return Scalar(Value(value), literal, "a number");
}

bool GridSaxHandler::start_object(std::size_t /*elements*/) {
  if (depth_ == kInObject) return RejectNotAList("an object");
  if (depth_ == kInList) {
    return Fail(absl::StrCat(ParameterSubject(parameters_.back().name), ": element ",
                             parameters_.back().elements.size(),
                             " is a nested object; list only numbers, strings or booleans"));
  }
  depth_ = kInObject;
  return true;
}

bool GridSaxHandler::start_array(std::size_t /*elements*/) {
  if (depth_ == kTopLevel) return RejectTopLevel("an array");
  if (depth_ == kInList) {
    return Fail(absl::StrCat(ParameterSubject(parameters_.back().name), ": element ",
                             parameters_.back().elements.size(),
                             " is a nested array; list only numbers, strings or booleans"));
  }
  depth_ = kInList;
  return true;
}

bool GridSaxHandler::parse_error(std::size_t position, const std::string& last_token,
                                 const nlohmann::detail::exception& error) {
  // nlohmann::json raises error 406 for a float literal that overflows a double.
  constexpr int kNumberOverflow = 406;
  if (error.id == kNumberOverflow && depth_ == kInList) {
    return Fail(absl::StrCat(CurrentElementSubject(last_token),
                             " is outside the double range; use a finite number of magnitude "
                             "below 1.8e308"));
  }

  // `position` counts the bytes read, including the one that failed.
  const auto [line, column] = LineAndColumn(text_, position == 0 ? 0 : position - 1);
  return Fail(absl::StrCat("grid: invalid JSON at line ", line, ", column ", column, ": ",
                           ParseErrorReason(error.what())));
}

// Kinds that may share a list: integers and floats are both numbers.
enum class Kind { kNumber, kString, kBoolean };

Kind KindOf(const Value& value) {
  if (std::holds_alternative<std::string>(value)) return Kind::kString;
  if (std::holds_alternative<bool>(value)) return Kind::kBoolean;
  return Kind::kNumber;
}

absl::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kNumber:
      return "a number";
    case Kind::kString:
      return "a string";
    case Kind::kBoolean:
      return "a boolean";
  }
  return "a value";
}

bool IsValidUtf8(std::string_view text) {
  try {
    (void)Json(text).dump();
    return true;
  } catch (const Json::type_error&) {
    return false;
  }
}

// The double equal to `value`, or nullopt when no double represents it exactly.
std::optional<double> ExactDouble(int64_t value) {
  const double converted = static_cast<double>(value);
  // 2^63 is the first double above every int64, and converting it back is undefined.
  if (converted >= 9223372036854775808.0) return std::nullopt;
  if (static_cast<int64_t>(converted) != value) return std::nullopt;
  return converted;
}

// A key that is equal for two values of one kind exactly when the values are equal.
std::string DuplicateKey(const Value& value) {
  if (const auto* d = std::get_if<double>(&value)) return FormatDouble(*d == 0 ? 0.0 : *d);
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  return FormatValue(value);
}

absl::Status CheckName(const RawParameter& parameter, const GridOptions& options) {
  if (options.check_hyperparameters && !IsKnownHyperparameter(parameter.name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        ParameterSubject(parameter.name), " is not a known hyperparameter; use one of ",
        absl::StrJoin(KnownHyperparameterNames(), ", ")));
  }
  if (parameter.name.empty()) {
    return absl::InvalidArgumentError("grid parameter \"\": the name is empty; give a name");
  }
  if (!IsValidUtf8(parameter.name)) {
    return absl::InvalidArgumentError(absl::StrCat(ParameterSubject(parameter.name),
                                                   ": the name is not valid UTF-8; use a "
                                                   "UTF-8 name"));
  }
  return absl::OkStatus();
}

// Checks that every element has the kind of element 0.
absl::Status CheckOneKind(const RawParameter& parameter) {
  const Kind first = KindOf(parameter.elements[0].value);
  for (size_t i = 1; i < parameter.elements.size(); ++i) {
    const Kind kind = KindOf(parameter.elements[i].value);
    if (kind == first) continue;
    return absl::InvalidArgumentError(
        absl::StrCat(ElementSubject(parameter.name, i, parameter.elements[i].text), " is ",
                     KindName(kind), ", but element 0 (", parameter.elements[0].text, ") is ",
                     KindName(first), "; use values of one kind in a list"));
  }
  return absl::OkStatus();
}

// Converts integers to doubles when the list has a float or the parameter takes doubles,
// and checks that doubles are finite and strings are valid UTF-8.
absl::Status NormalizeNumbers(RawParameter& parameter, const GridOptions& options) {
  const bool has_double =
      std::any_of(parameter.elements.begin(), parameter.elements.end(),
                  [](const RawElement& e) { return std::holds_alternative<double>(e.value); });
  const bool takes_double =
      has_double || (options.check_hyperparameters && IsDoubleHyperparameter(parameter.name));
  for (size_t i = 0; i < parameter.elements.size(); ++i) {
    RawElement& element = parameter.elements[i];
    if (const auto* integer = std::get_if<int64_t>(&element.value); integer && takes_double) {
      const std::optional<double> converted = ExactDouble(*integer);
      if (!converted) {
        return absl::InvalidArgumentError(
            absl::StrCat(ElementSubject(parameter.name, i, element.text),
                         " cannot be stored exactly as a double, which this list requires; use an "
                         "integer of magnitude at most 2^53"));
      }
      element.value = *converted;
    } else if (const auto* d = std::get_if<double>(&element.value); d && !std::isfinite(*d)) {
      return absl::InvalidArgumentError(absl::StrCat(
          ElementSubject(parameter.name, i, element.text), " is not finite; use a finite number"));
    } else if (const auto* s = std::get_if<std::string>(&element.value); s && !IsValidUtf8(*s)) {
      return absl::InvalidArgumentError(absl::StrCat(
          ElementSubject(parameter.name, i, element.text), " is not valid UTF-8; use UTF-8 text"));
    }
  }
  return absl::OkStatus();
}

// Checks each element's domain (with hyperparameter checks) and that no value repeats.
absl::Status CheckElements(const RawParameter& parameter, const GridOptions& options) {
  std::unordered_map<std::string, size_t> first_index;
  for (size_t i = 0; i < parameter.elements.size(); ++i) {
    const RawElement& element = parameter.elements[i];
    if (options.check_hyperparameters) {
      const std::string violation = DescribeDomainViolation(parameter.name, element.value);
      if (!violation.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(ElementSubject(parameter.name, i, element.text), " ", violation));
      }
    }
    const auto [it, inserted] = first_index.emplace(DuplicateKey(element.value), i);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(
          ElementSubject(parameter.name, i, element.text), " duplicates element ", it->second, " (",
          parameter.elements[it->second].text, "); list each value once"));
    }
  }
  return absl::OkStatus();
}

// Applies the rules after the JSON shape: names, list contents and domains, each
// parameter in file order. Returns the parameters sorted by name.
absl::StatusOr<std::vector<GridParameter>> ValidateParameters(
    std::vector<RawParameter> raw_parameters, const GridOptions& options) {
  if (raw_parameters.empty()) {
    return absl::InvalidArgumentError(
        "grid: no parameters; add at least one hyperparameter with a list of values");
  }

  std::unordered_map<std::string, size_t> first_index;
  std::vector<GridParameter> parameters;
  for (size_t p = 0; p < raw_parameters.size(); ++p) {
    RawParameter& raw = raw_parameters[p];
    if (absl::Status status = CheckName(raw, options); !status.ok()) return status;
    const auto [it, inserted] = first_index.emplace(raw.name, p);
    if (!inserted) {
      return absl::InvalidArgumentError(absl::StrCat(ParameterSubject(raw.name),
                                                     " appears twice (entries ", it->second,
                                                     " and ", p, "); give one list for it"));
    }
    if (raw.elements.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(ParameterSubject(raw.name), ": the list is empty; give at least one value"));
    }
    if (absl::Status status = CheckOneKind(raw); !status.ok()) return status;
    if (absl::Status status = NormalizeNumbers(raw, options); !status.ok()) return status;
    if (absl::Status status = CheckElements(raw, options); !status.ok()) return status;

    GridParameter& parameter = parameters.emplace_back();
    parameter.name = std::move(raw.name);
    for (RawElement& element : raw.elements) parameter.values.push_back(std::move(element.value));
  }

  std::sort(parameters.begin(), parameters.end(),
            [](const GridParameter& a, const GridParameter& b) { return a.name < b.name; });
  return parameters;
}

}  // namespace

absl::StatusOr<Grid> Grid::Parse(std::string_view json_text, GridOptions options) {
  GridSaxHandler handler(json_text);
  const bool parsed = Json::sax_parse(json_text, &handler);
  if (!handler.status().ok()) return handler.status();
  if (!parsed) return absl::InternalError("grid: the JSON parser stopped without a reason");

  absl::StatusOr<std::vector<GridParameter>> parameters =
      ValidateParameters(std::move(handler.parameters()), options);
  if (!parameters.ok()) return parameters.status();
  return Grid(*std::move(parameters));
}

absl::StatusOr<Grid> Grid::FromParameters(std::vector<GridParameter> parameters,
                                          GridOptions options) {
  std::vector<RawParameter> raw_parameters;
  raw_parameters.reserve(parameters.size());
  for (GridParameter& parameter : parameters) {
    RawParameter& raw = raw_parameters.emplace_back();
    raw.name = std::move(parameter.name);
    for (Value& value : parameter.values) {
      std::string text = FormatValueAsJson(value);
      raw.elements.push_back({std::move(value), std::move(text)});
    }
  }

  absl::StatusOr<std::vector<GridParameter>> validated =
      ValidateParameters(std::move(raw_parameters), options);
  if (!validated.ok()) return validated.status();
  return Grid(*std::move(validated));
}

std::string Grid::CanonicalJson() const {
  // Validation keeps every string valid UTF-8 and every double finite, so dump() neither
  // throws nor writes null.
  Json object = Json::object();
  for (const GridParameter& parameter : parameters_) {
    Json values = Json::array();
    for (const Value& value : parameter.values) values.push_back(ValueToJson(value));
    object[parameter.name] = std::move(values);
  }
  return object.dump();
}

}  // namespace sweep
