#include "common/hyperparameters.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <variant>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace sweep {
namespace {

enum class Domain { kPositiveInteger, kProbability, kPositiveNumber, kAugmentation };

struct HyperparameterSpec {
  std::string_view name;
  Domain domain;
  int64_t max_integer;  // Only for kPositiveInteger.
};

// Sorted by name, like KnownHyperparameterNames().
constexpr std::array<HyperparameterSpec, 8> kSpecs = {{
    {"augmentation", Domain::kAugmentation, 0},
    {"batch_size", Domain::kPositiveInteger, kMaxBatchSize},
    {"conv1_depth", Domain::kPositiveInteger, kMaxLayerWidth},
    {"conv2_depth", Domain::kPositiveInteger, kMaxLayerWidth},
    {"dense_layer_units", Domain::kPositiveInteger, kMaxLayerWidth},
    {"keep_prob", Domain::kProbability, 0},
    {"learning_rate", Domain::kPositiveNumber, 0},
    {"num_epochs", Domain::kPositiveInteger, kMaxEpochs},
}};

constexpr std::array<std::pair<std::string_view, Augmentation>, 4> kAugmentations = {{
    {"none", Augmentation::kNone},
    {"flip", Augmentation::kFlip},
    {"crop", Augmentation::kCrop},
    {"flip_crop", Augmentation::kFlipAndCrop},
}};

const HyperparameterSpec* FindSpec(std::string_view name) {
  for (const HyperparameterSpec& spec : kSpecs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

// The value as a double when it is an int64 or a double.
std::optional<double> AsNumber(const Value& value) {
  if (const auto* i = std::get_if<int64_t>(&value)) return static_cast<double>(*i);
  if (const auto* d = std::get_if<double>(&value)) return *d;
  return std::nullopt;
}

std::string AugmentationChoices() {
  return absl::StrJoin(kAugmentations, ", ",
                       [](std::string* out, const auto& entry) { out->append(entry.first); });
}

std::string DescribeIntegerViolation(const Value& value, int64_t max) {
  const std::string fix = absl::StrCat("use an integer from 1 to ", max);
  const auto* integer = std::get_if<int64_t>(&value);
  if (integer == nullptr) return absl::StrCat("is not an integer; ", fix);
  if (*integer < 1) return absl::StrCat("is not a positive integer; ", fix);
  if (*integer > max) return absl::StrCat("is above the maximum ", max, "; ", fix);
  return "";
}

std::string DescribeViolation(const HyperparameterSpec& spec, const Value& value) {
  switch (spec.domain) {
    case Domain::kPositiveInteger:
      return DescribeIntegerViolation(value, spec.max_integer);
    case Domain::kProbability: {
      const std::optional<double> number = AsNumber(value);
      if (!number) return "is not a number; use a number greater than 0 and at most 1";
      // Written so that NaN fails the check.
      if (!(*number > 0 && *number <= 1)) {
        return "is outside (0, 1]; use a number greater than 0 and at most 1";
      }
      return "";
    }
    case Domain::kPositiveNumber: {
      const std::optional<double> number = AsNumber(value);
      if (!number) return "is not a number; use a positive finite number such as 0.001";
      if (!(*number > 0 && std::isfinite(*number))) {
        return "is not a positive finite number; use a positive finite number such as 0.001";
      }
      return "";
    }
    case Domain::kAugmentation: {
      const auto* name = std::get_if<std::string>(&value);
      if (name == nullptr)
        return absl::StrCat("is not a string; use one of ", AugmentationChoices());
      if (!ParseAugmentation(*name)) {
        return absl::StrCat("is not a known augmentation; use one of ", AugmentationChoices());
      }
      return "";
    }
  }
  return "";
}

absl::Status UnknownHyperparameterError(std::string_view name) {
  return absl::InvalidArgumentError(absl::StrCat("hyperparameter ", QuoteJsonString(name),
                                                 " is unknown; use one of ",
                                                 absl::StrJoin(KnownHyperparameterNames(), ", ")));
}

// Stores a value that ValidateHyperparameter accepted into its field.
void SetField(std::string_view name, const Value& value, Hyperparameters& out) {
  if (name == "augmentation") {
    out.augmentation = *ParseAugmentation(std::get<std::string>(value));
  } else if (name == "batch_size") {
    out.batch_size = std::get<int64_t>(value);
  } else if (name == "conv1_depth") {
    out.conv1_depth = std::get<int64_t>(value);
  } else if (name == "conv2_depth") {
    out.conv2_depth = std::get<int64_t>(value);
  } else if (name == "dense_layer_units") {
    out.dense_layer_units = std::get<int64_t>(value);
  } else if (name == "keep_prob") {
    out.keep_prob = *AsNumber(value);
  } else if (name == "learning_rate") {
    out.learning_rate = *AsNumber(value);
  } else if (name == "num_epochs") {
    out.num_epochs = std::get<int64_t>(value);
  }
}

}  // namespace

const std::vector<std::string>& KnownHyperparameterNames() {
  static const auto* const names = [] {
    auto* result = new std::vector<std::string>();
    for (const HyperparameterSpec& spec : kSpecs) result->emplace_back(spec.name);
    return result;
  }();
  return *names;
}

bool IsKnownHyperparameter(std::string_view name) { return FindSpec(name) != nullptr; }

bool IsDoubleHyperparameter(std::string_view name) {
  const HyperparameterSpec* spec = FindSpec(name);
  return spec != nullptr &&
         (spec->domain == Domain::kProbability || spec->domain == Domain::kPositiveNumber);
}

std::string DescribeDomainViolation(std::string_view name, const Value& value) {
  const HyperparameterSpec* spec = FindSpec(name);
  if (spec == nullptr) return "";
  return DescribeViolation(*spec, value);
}

absl::Status ValidateHyperparameter(std::string_view name, const Value& value) {
  const HyperparameterSpec* spec = FindSpec(name);
  if (spec == nullptr) return UnknownHyperparameterError(name);
  const std::string violation = DescribeViolation(*spec, value);
  if (violation.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("hyperparameter ", QuoteJsonString(name),
                                                 ": value ", FormatValueAsJson(value), " ",
                                                 violation));
}

absl::StatusOr<Hyperparameters> HyperparametersFromAssignment(const Assignment& assignment) {
  Hyperparameters result;
  std::vector<std::string_view> seen;
  for (const auto& [name, value] : assignment) {
    if (absl::Status status = ValidateHyperparameter(name, value); !status.ok()) return status;
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      return absl::InvalidArgumentError(absl::StrCat("hyperparameter ", QuoteJsonString(name),
                                                     " appears twice in the assignment; give "
                                                     "each hyperparameter once"));
    }
    seen.push_back(name);
    SetField(name, value, result);
  }
  return result;
}

std::string_view AugmentationName(Augmentation augmentation) {
  for (const auto& [name, value] : kAugmentations) {
    if (value == augmentation) return name;
  }
  return "unknown";
}

std::optional<Augmentation> ParseAugmentation(std::string_view name) {
  for (const auto& [spelling, value] : kAugmentations) {
    if (spelling == name) return value;
  }
  return std::nullopt;
}

bool CanFuse(const Hyperparameters& a, const Hyperparameters& b) {
  return a.conv1_depth == b.conv1_depth && a.conv2_depth == b.conv2_depth &&
         a.dense_layer_units == b.dense_layer_units && a.batch_size == b.batch_size;
}

}  // namespace sweep
