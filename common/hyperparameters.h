#ifndef SWEEP_COMMON_HYPERPARAMETERS_H_
#define SWEEP_COMMON_HYPERPARAMETERS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/value.h"

namespace sweep {

// Random training-image transforms: a horizontal flip of each image with probability 1/2,
// a random crop resized back to the full image, or both (see worker/augmentation.h).
enum class Augmentation { kNone, kFlip, kCrop, kFlipAndCrop };

// The trainer's hyperparameters. Defaults apply to every name a grid omits.
struct Hyperparameters {
  int64_t conv1_depth = 32;
  int64_t conv2_depth = 64;
  int64_t dense_layer_units = 1024;
  int64_t batch_size = 128;
  int64_t num_epochs = 5;
  double keep_prob = 0.5;
  double learning_rate = 1e-3;
  Augmentation augmentation = Augmentation::kNone;
};

// Returns true when trials with these hyperparameters can train in one fused group: equal
// conv1_depth, conv2_depth and dense_layer_units (the weights stack into one tensor per
// layer) and equal batch_size (the trials step together, one batch each per step). The
// other hyperparameters, num_epochs included, may differ.
bool CanFuse(const Hyperparameters& a, const Hyperparameters& b);

// Upper limits that reject absurd values before a worker tries to allocate them.
inline constexpr int64_t kMaxLayerWidth = 4096;  // conv1_depth, conv2_depth, dense_layer_units
inline constexpr int64_t kMaxBatchSize = 65536;
inline constexpr int64_t kMaxEpochs = 1000;

// Names of the known hyperparameters, sorted.
const std::vector<std::string>& KnownHyperparameterNames();

bool IsKnownHyperparameter(std::string_view name);

// Whether the known hyperparameter `name` takes a double (keep_prob, learning_rate).
// Integers given for these are accepted and converted.
bool IsDoubleHyperparameter(std::string_view name);

// Describes why `value` lies outside the domain of the known hyperparameter `name`, as
// the rest of a sentence whose subject is the value, followed by the fix: "is not a
// positive integer; use an integer from 1 to 65536". Returns an empty string when the
// value is in the domain or `name` is unknown.
std::string DescribeDomainViolation(std::string_view name, const Value& value);

// Checks that `name` is a known hyperparameter and `value` lies in its domain. The
// message names the parameter, the value and the accepted domain.
absl::Status ValidateHyperparameter(std::string_view name, const Value& value);

// Builds hyperparameters from an assignment, taking defaults for omitted names. Rejects
// unknown names, names given twice and values outside a domain with INVALID_ARGUMENT.
absl::StatusOr<Hyperparameters> HyperparametersFromAssignment(const Assignment& assignment);

// The grid spelling of an augmentation: "none", "flip", "crop" or "flip_crop".
std::string_view AugmentationName(Augmentation augmentation);

// The augmentation spelled `name` in a grid, or nullopt for an unknown spelling.
std::optional<Augmentation> ParseAugmentation(std::string_view name);

}  // namespace sweep

#endif  // SWEEP_COMMON_HYPERPARAMETERS_H_
