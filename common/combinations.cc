// Counting, indexing and sampling of a grid's combinations. Counts use GMP's exact
// integers because a grid of 20 parameters with 10 values each already has 10^20
// combinations, more than a uint64_t can represent.
#include <gmpxx.h>

#include <bit>
#include <cstdint>
#include <limits>
#include <random>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/search_space.h"

namespace sweep {
namespace {

mpz_class CombinationCount(const Grid& grid) {
  mpz_class count = 1;
  for (const GridParameter& parameter : grid.parameters()) count *= parameter.values.size();
  return count;
}

bool FitsUint64(const mpz_class& value) { return mpz_sizeinbase(value.get_mpz_t(), 2) <= 64; }

uint64_t ToUint64(const mpz_class& value) {
  uint64_t result = 0;
  mpz_export(&result, nullptr, -1, sizeof(result), 0, 0, value.get_mpz_t());
  return result;
}

// A uniform integer in [0, bound), bound >= 1: draws bit_width(bound - 1) bits from one
// engine output and retries until the value is below bound, so each try succeeds with
// probability above 1/2. Uses no engine output when bound is 1.
uint64_t UniformBelow(std::mt19937_64& engine, uint64_t bound) {
  if (bound <= 1) return 0;
  const int bits = std::bit_width(bound - 1);
  const uint64_t mask = bits == 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  while (true) {
    const uint64_t candidate = engine() & mask;
    if (candidate < bound) return candidate;
  }
}

// The same rule for a bound of any size: the bits come from whole engine outputs, lowest
// 64-bit word first, with the top word masked. For a bound below 2^64 this consumes and
// returns exactly what the uint64_t overload does.
mpz_class UniformBelow(std::mt19937_64& engine, const mpz_class& bound) {
  if (bound <= 1) return 0;
  const mpz_class largest = bound - 1;
  const size_t bits = mpz_sizeinbase(largest.get_mpz_t(), 2);
  const size_t word_count = (bits + 63) / 64;
  const size_t top_bits = bits - 64 * (word_count - 1);
  const uint64_t top_mask = top_bits == 64 ? ~uint64_t{0} : (uint64_t{1} << top_bits) - 1;
  std::vector<uint64_t> words(word_count);
  mpz_class candidate;
  while (true) {
    for (uint64_t& word : words) word = engine();
    words.back() &= top_mask;
    mpz_import(candidate.get_mpz_t(), word_count, -1, sizeof(uint64_t), 0, 0, words.data());
    if (candidate < bound) return candidate;
  }
}

struct MpzHash {
  size_t operator()(const mpz_class& value) const {
    // The lowest limb of a uniformly drawn index is itself uniform enough for a hash.
    return static_cast<size_t>(mpz_getlimbn(value.get_mpz_t(), 0));
  }
};

template <typename Index>
using IndexSet =
    std::conditional_t<std::is_same_v<Index, mpz_class>, std::unordered_set<mpz_class, MpzHash>,
                       std::unordered_set<uint64_t>>;

// Robert Floyd's algorithm: a uniformly random `sample_size`-subset of [0, count), with
// sample_size < count, in order of insertion. For j from count - sample_size to
// count - 1, draw t in [0, j] and take t, or j when t is already taken.
template <typename Index>
std::vector<Index> FloydSubset(std::mt19937_64& engine, const Index& count, uint64_t sample_size) {
  std::vector<Index> chosen;
  chosen.reserve(sample_size);
  IndexSet<Index> chosen_set;
  chosen_set.reserve(sample_size);
  Index j = count - sample_size;
  for (uint64_t step = 0; step < sample_size; ++step, ++j) {
    Index t = UniformBelow(engine, Index(j + 1));
    if (chosen_set.contains(t)) t = j;
    chosen_set.insert(t);
    chosen.push_back(std::move(t));
  }
  return chosen;
}

// Fisher-Yates: swaps item i with a uniform item in [0, i], from the last item down.
template <typename T>
void Shuffle(std::mt19937_64& engine, std::vector<T>& items) {
  for (size_t i = items.size(); i > 1; --i) {
    const uint64_t other = UniformBelow(engine, static_cast<uint64_t>(i));
    std::swap(items[i - 1], items[other]);
  }
}

// Mixed-radix digits of `index`, last parameter least significant. The most significant
// digit is also reduced modulo its radix.
std::vector<size_t> Digits(const Grid& grid, uint64_t index) {
  const std::vector<GridParameter>& parameters = grid.parameters();
  std::vector<size_t> digits(parameters.size());
  for (size_t p = parameters.size(); p-- > 0;) {
    const uint64_t radix = parameters[p].values.size();
    digits[p] = index % radix;
    index /= radix;
  }
  return digits;
}

std::vector<size_t> Digits(const Grid& grid, mpz_class index) {
  const std::vector<GridParameter>& parameters = grid.parameters();
  std::vector<size_t> digits(parameters.size());
  for (size_t p = parameters.size(); p-- > 0;) {
    static_assert(sizeof(unsigned long) == sizeof(size_t));
    digits[p] = mpz_fdiv_q_ui(index.get_mpz_t(), index.get_mpz_t(), parameters[p].values.size());
  }
  return digits;
}

template <typename Index>
Assignment AssignmentAt(const Grid& grid, const Index& index) {
  const std::vector<size_t> digits = Digits(grid, index);
  Assignment assignment;
  assignment.reserve(digits.size());
  for (size_t p = 0; p < digits.size(); ++p) {
    const GridParameter& parameter = grid.parameters()[p];
    assignment.emplace_back(parameter.name, parameter.values[digits[p]]);
  }
  return assignment;
}

// Chooses the indices and maps them to assignments, with uint64_t indices when the count
// fits and exact integers otherwise. Both draw the same random numbers for a given count.
template <typename Index>
std::vector<Assignment> Sample(const Grid& grid, const Index& count, uint64_t sample_size,
                               std::mt19937_64& engine) {
  std::vector<Index> indices;
  if (count <= sample_size) {
    indices.reserve(sample_size);
    for (uint64_t i = 0; i < sample_size; ++i) indices.push_back(Index(i));
  } else {
    indices = FloydSubset(engine, count, sample_size);
  }
  Shuffle(engine, indices);

  std::vector<Assignment> assignments;
  assignments.reserve(indices.size());
  for (const Index& index : indices) assignments.push_back(AssignmentAt(grid, index));
  return assignments;
}

}  // namespace

std::string Grid::CombinationCountDecimal() const { return CombinationCount(*this).get_str(); }

int64_t Grid::CombinationCountCapped(int64_t limit) const {
  const mpz_class count = CombinationCount(*this);
  if (count > limit) return limit;
  return count.get_si();
}

Assignment Grid::CombinationAt(uint64_t index) const { return AssignmentAt(*this, index); }

absl::StatusOr<std::vector<Assignment>> SampleCombinations(const Grid& grid, int64_t grid_size,
                                                           uint64_t seed) {
  if (grid_size <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("grid_size ", grid_size, " is not positive; request at least 1 combination"));
  }
  if (grid_size > kMaxGridSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("grid_size ", grid_size, " is above the maximum ", kMaxGridSize,
                     "; request at most ", kMaxGridSize, " combinations"));
  }

  const mpz_class count = CombinationCount(grid);
  const uint64_t sample_size =
      count < grid_size ? ToUint64(count) : static_cast<uint64_t>(grid_size);
  std::mt19937_64 engine(seed);
  if (FitsUint64(count)) return Sample(grid, ToUint64(count), sample_size, engine);
  return Sample(grid, count, sample_size, engine);
}

}  // namespace sweep
