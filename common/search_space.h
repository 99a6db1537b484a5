#ifndef SWEEP_COMMON_SEARCH_SPACE_H_
#define SWEEP_COMMON_SEARCH_SPACE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/value.h"

namespace sweep {

// One grid dimension: a hyperparameter and its distinct candidate values in file order.
struct GridParameter {
  std::string name;
  std::vector<Value> values;

  bool operator==(const GridParameter&) const = default;
};

struct GridOptions {
  // When true, every name must be a known hyperparameter and every value must lie in
  // its domain (see common/hyperparameters.h). When false, only the structural rules
  // apply, so a grid may use any names: tests and benchmarks use this for grids larger
  // than the eight known hyperparameters allow.
  bool check_hyperparameters = true;
};

// A validated search space: the cartesian product of its parameters' value lists.
//
// Structural rules, checked on every grid:
// - at least one parameter, with names that are non-empty, distinct and valid UTF-8;
// - each list non-empty, with values of one kind (integers, floats, strings or booleans)
//   and no value twice;
// - floats finite and strings valid UTF-8.
// A list that mixes integers and floats stores every value as a double, and an integer
// that no double represents exactly is rejected. With hyperparameter checks, integers
// given for keep_prob or learning_rate are stored as doubles too.
//
// Combination i, for 0 <= i < count, is the i-th element of the product in lexicographic
// order over the parameters sorted by name, values in list order: the order of Python's
// itertools.product with the last parameter varying fastest.
class Grid {
 public:
  // An empty grid: its product has one combination, which assigns nothing.
  Grid() = default;

  // Parses and validates a grid file's JSON text: an object that maps each name to a
  // list of values. Returns INVALID_ARGUMENT, with a message that names the parameter,
  // the element index and the problem, for any of:
  // - malformed JSON (the message gives its line and column);
  // - a top-level value other than an object, or an empty object;
  // - a scalar, object or null where a list belongs, or an empty list;
  // - nested arrays or objects, or null, inside a list;
  // - mixed kinds, duplicate values or duplicate keys;
  // - integers outside int64, and floats outside the double range or that would read as 0;
  // - a violation of the structural rules above.
  // With hyperparameter checks (the default) it also rejects unknown hyperparameter names
  // and values outside a hyperparameter's domain. Numbers keep their exact value: 0.4
  // becomes the double nearest to 0.4.
  static absl::StatusOr<Grid> Parse(std::string_view json_text, GridOptions options = {});

  // Validates parameters given in file order under the same rules as Parse and sorts
  // them by name.
  static absl::StatusOr<Grid> FromParameters(std::vector<GridParameter> parameters,
                                             GridOptions options = {});

  // Parameters sorted by name.
  const std::vector<GridParameter>& parameters() const { return parameters_; }

  // The grid in canonical JSON: keys sorted, values in file order, shortest round-trip
  // numbers.
  std::string CanonicalJson() const;

  // Exact number of combinations, in decimal.
  std::string CombinationCountDecimal() const;

  // min(combination count, limit), without overflow.
  int64_t CombinationCountCapped(int64_t limit) const;

  // Combination `index` in the order described above. `index` is reduced modulo the
  // combination count, so callers pass an index below the count.
  Assignment CombinationAt(uint64_t index) const;

  bool operator==(const Grid&) const = default;

 private:
  explicit Grid(std::vector<GridParameter> parameters) : parameters_(std::move(parameters)) {}

  std::vector<GridParameter> parameters_;
};

// The largest grid_size SampleCombinations accepts. The sample is built in memory, so
// this bounds what one request can allocate; a sweep of more trials is not practical.
inline constexpr int64_t kMaxGridSize = 1'000'000;

// Draws min(grid_size, combination count) distinct combinations uniformly at random
// without replacement, without building the product: time and memory grow with
// grid_size. The same grid, grid_size and seed give the same combinations in the same
// order on every machine. Returns INVALID_ARGUMENT unless 1 <= grid_size <= kMaxGridSize.
//
// Algorithm: Robert Floyd's subset sampling chooses combination indices, which are exact
// integers of any size, and a Fisher-Yates shuffle then orders them. When grid_size
// reaches the count, every index is shuffled instead. Random numbers come from
// std::mt19937_64 seeded with `seed`, whose output the C++ standard fixes. A uniform
// integer below n is drawn by rejection: take bit_width(n - 1) bits from whole 64-bit
// outputs (lowest word first, top word masked) until the value is below n.
absl::StatusOr<std::vector<Assignment>> SampleCombinations(const Grid& grid, int64_t grid_size,
                                                           uint64_t seed);

}  // namespace sweep

#endif  // SWEEP_COMMON_SEARCH_SPACE_H_
