#include "common/refine.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace sweep {
namespace {

enum class Midpoint { kNone, kGeometric, kArithmetic };

Midpoint MidpointRule(std::string_view name) {
  constexpr std::array<std::string_view, 5> kGeometric = {
      "batch_size", "conv1_depth", "conv2_depth", "dense_layer_units", "learning_rate"};
  if (std::find(kGeometric.begin(), kGeometric.end(), name) != kGeometric.end()) {
    return Midpoint::kGeometric;
  }
  if (name == "keep_prob") return Midpoint::kArithmetic;
  return Midpoint::kNone;
}

bool IsNumber(const Value& value) {
  return std::holds_alternative<int64_t>(value) || std::holds_alternative<double>(value);
}

double ToDouble(const Value& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) return static_cast<double>(*i);
  return std::get<double>(value);
}

double MidpointOf(Midpoint rule, double a, double b) {
  // a / 2 + b / 2 equals (a + b) / 2 for normal doubles and cannot overflow.
  if (rule == Midpoint::kArithmetic) return a / 2 + b / 2;
  // sqrt(a * b), or sqrt(a) * sqrt(b) where the product would overflow or lose precision.
  const double product = a * b;
  if (std::isnormal(product)) return std::sqrt(product);
  return std::sqrt(a) * std::sqrt(b);
}

// The midpoint in the list's type: integer lists round to the nearest integer.
Value TypedMidpoint(Midpoint rule, const Value& a, const Value& b) {
  const double midpoint = MidpointOf(rule, ToDouble(a), ToDouble(b));
  if (std::holds_alternative<int64_t>(a)) return static_cast<int64_t>(std::llround(midpoint));
  return midpoint;
}

// Orders the numbers of one list, which are all int64 or all double.
bool NumberLess(const Value& a, const Value& b) {
  const auto* a_integer = std::get_if<int64_t>(&a);
  const auto* b_integer = std::get_if<int64_t>(&b);
  if (a_integer != nullptr && b_integer != nullptr) return *a_integer < *b_integer;
  return ToDouble(a) < ToDouble(b);
}

// The values the top assignments give `name`, in the order of `parent.values`.
absl::StatusOr<std::vector<Value>> TopValues(const GridParameter& parent,
                                             const std::vector<Assignment>& top) {
  std::vector<bool> used(parent.values.size(), false);
  for (size_t a = 0; a < top.size(); ++a) {
    const auto entry = std::find_if(top[a].begin(), top[a].end(), [&parent](const auto& pair) {
      return pair.first == parent.name;
    });
    if (entry == top[a].end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("refine: top assignment ", a, " has no value for ",
                       QuoteJsonString(parent.name), "; pass assignments from the parent grid"));
    }
    const auto position = std::find(parent.values.begin(), parent.values.end(), entry->second);
    if (position == parent.values.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "refine: top assignment ", a, " gives ", QuoteJsonString(parent.name), " the value ",
          FormatValueAsJson(entry->second),
          ", which the parent grid does not list; pass assignments from the parent grid"));
    }
    used[position - parent.values.begin()] = true;
  }

  std::vector<Value> values;
  for (size_t i = 0; i < parent.values.size(); ++i) {
    if (used[i]) values.push_back(parent.values[i]);
  }
  return values;
}

// T plus the midpoints between each t in T and its neighbours in the sorted parent list.
std::vector<Value> AddMidpoints(Midpoint rule, const GridParameter& parent,
                                const std::vector<Value>& top_values) {
  std::vector<Value> sorted = parent.values;
  std::sort(sorted.begin(), sorted.end(), NumberLess);

  std::vector<Value> result = top_values;
  for (const Value& value : top_values) {
    const size_t i = std::find(sorted.begin(), sorted.end(), value) - sorted.begin();
    if (i > 0) result.push_back(TypedMidpoint(rule, sorted[i - 1], value));
    if (i + 1 < sorted.size()) result.push_back(TypedMidpoint(rule, value, sorted[i + 1]));
  }

  std::sort(result.begin(), result.end(), NumberLess);
  result.erase(std::unique(result.begin(), result.end()), result.end());
  return result;
}

}  // namespace

absl::StatusOr<Grid> RefineGrid(const Grid& parent, const std::vector<Assignment>& top) {
  if (top.empty()) {
    return absl::InvalidArgumentError("refine: no top assignments; pass at least one");
  }

  std::vector<GridParameter> parameters;
  for (const GridParameter& coarse : parent.parameters()) {
    absl::StatusOr<std::vector<Value>> top_values = TopValues(coarse, top);
    if (!top_values.ok()) return top_values.status();

    GridParameter& fine = parameters.emplace_back();
    fine.name = coarse.name;
    const bool numeric = std::all_of(coarse.values.begin(), coarse.values.end(), IsNumber);
    const Midpoint rule = numeric ? MidpointRule(coarse.name) : Midpoint::kNone;
    if (rule != Midpoint::kNone) {
      fine.values = AddMidpoints(rule, coarse, *top_values);
    } else {
      fine.values = *std::move(top_values);
      if (numeric) std::sort(fine.values.begin(), fine.values.end(), NumberLess);
    }
  }
  return Grid::FromParameters(std::move(parameters), {.check_hyperparameters = false});
}

}  // namespace sweep
