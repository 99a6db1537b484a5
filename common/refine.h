#ifndef SWEEP_COMMON_REFINE_H_
#define SWEEP_COMMON_REFINE_H_

#include <vector>

#include "absl/status/statusor.h"
#include "common/search_space.h"
#include "common/value.h"

namespace sweep {

// Builds a finer grid around the best trials of a coarse grid (coarse-to-fine search).
//
// `top` contains the assignments of the best trials, best first; each must give every
// parameter of `parent` a value that `parent` lists. For each parameter, with S its
// parent values sorted ascending and T the values the top trials used:
//
// - conv1_depth, conv2_depth, dense_layer_units, batch_size and learning_rate: T, plus
//   for each t in T the geometric midpoint sqrt(a * b) between t and each neighbour of
//   t in S (the next smaller and the next larger value, where they exist).
// - keep_prob: the same with the arithmetic midpoint (a + b) / 2.
// - Any other parameter, numeric or not (num_epochs, augmentation, names outside the
//   known hyperparameters): T only.
//
// Midpoints of an integer list are rounded to the nearest integer, halves away from
// zero, so a midpoint may equal a neighbour. Numeric lists are then deduplicated and
// sorted ascending, other lists keep the parent's order. Example: parent batch_size
// [32, 64, 128, 256] with T = {128} gives [91, 128, 181]; parent keep_prob
// [0.25, 0.5, 1] with T = {0.5, 1} gives [0.375, 0.5, 0.75, 1].
//
// Returns INVALID_ARGUMENT when `top` is empty or an assignment lacks a parameter or
// uses a value the parent does not list. The result passes the parent's structural
// rules; since midpoints lie between two values of the parent, a parent that passed the
// hyperparameter checks gives a result that passes them too.
absl::StatusOr<Grid> RefineGrid(const Grid& parent, const std::vector<Assignment>& top);

}  // namespace sweep

#endif  // SWEEP_COMMON_REFINE_H_
