#ifndef SWEEP_COMMON_HYPERPARAMETERS_H_
#define SWEEP_COMMON_HYPERPARAMETERS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/value.h"

namespace sweep {

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

// Names of the known hyperparameters, sorted.
const std::vector<std::string>& KnownHyperparameterNames();

// Checks that `name` is a known hyperparameter and `value` lies in its domain. The
// message names the parameter, the value and the accepted domain.
absl::Status ValidateHyperparameter(std::string_view name, const Value& value);

// Builds hyperparameters from an assignment, taking defaults for omitted names.
absl::StatusOr<Hyperparameters> HyperparametersFromAssignment(const Assignment& assignment);

std::string_view AugmentationName(Augmentation augmentation);

}  // namespace sweep

#endif  // SWEEP_COMMON_HYPERPARAMETERS_H_
