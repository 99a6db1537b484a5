#ifndef SWEEP_COMMON_SEARCH_SPACE_H_
#define SWEEP_COMMON_SEARCH_SPACE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/value.h"

namespace sweep {

// One grid dimension: a hyperparameter and its distinct candidate values in file order.
struct GridParameter {
  std::string name;
  std::vector<Value> values;
};

// A validated search space: the cartesian product of its parameters' value lists.
class Grid {
 public:
  // Parses and validates a grid file's JSON text. Rejects, with INVALID_ARGUMENT and a
  // message naming the parameter, element index and problem: malformed JSON, an empty
  // object, empty lists, scalars where a list belongs, nested arrays or objects, null,
  // mixed kinds, duplicate values, duplicate keys, unknown hyperparameter names and values
  // outside a hyperparameter's domain.
  static absl::StatusOr<Grid> Parse(std::string_view json_text);

  // Parameters sorted by name.
  const std::vector<GridParameter>& parameters() const { return parameters_; }

  // The grid in canonical JSON: keys sorted, values in file order, shortest round-trip
  // numbers.
  std::string CanonicalJson() const;

  // Exact number of combinations, in decimal.
  std::string CombinationCountDecimal() const;

  // min(combination count, limit), without overflow.
  int64_t CombinationCountCapped(int64_t limit) const;

 private:
  std::vector<GridParameter> parameters_;
};

// Draws min(grid_size, combination count) distinct combinations uniformly at random
// without replacement, without building the product: time and memory grow with
// grid_size. The same grid, grid_size and seed give the same combinations in the same
// order on every machine. grid_size must be positive.
absl::StatusOr<std::vector<Assignment>> SampleCombinations(const Grid& grid, int64_t grid_size,
                                                           uint64_t seed);

}  // namespace sweep

#endif  // SWEEP_COMMON_SEARCH_SPACE_H_
