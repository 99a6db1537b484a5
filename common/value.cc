#include "common/value.h"

#include <array>
#include <charconv>
#include <cmath>

namespace sweep {

std::string FormatDouble(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  std::array<char, 64> buffer;
  auto [end, error] = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  return std::string(buffer.data(), end);
}

std::string FormatValue(const Value& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&value)) return FormatDouble(*d);
  if (const auto* s = std::get_if<std::string>(&value)) return *s;
  return std::get<bool>(value) ? "true" : "false";
}

std::string FormatValueAsJson(const Value& value) {
  if (const auto* d = std::get_if<double>(&value); d != nullptr && !std::isfinite(*d)) {
    return FormatDouble(*d);
  }
  return ValueToJson(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string QuoteJsonString(std::string_view text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json ValueToJson(const Value& value) {
  return std::visit([](const auto& v) { return nlohmann::json(v); }, value);
}

std::string CanonicalJson(const Assignment& assignment) {
  // nlohmann::json objects keep keys sorted and print doubles in shortest round-trip form.
  nlohmann::json object = nlohmann::json::object();
  for (const auto& [name, value] : assignment) object[name] = ValueToJson(value);
  return object.dump();
}

}  // namespace sweep
