#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/search_space.h"
#include "gtest/gtest.h"

namespace sweep {
namespace {

// A grid without hyperparameter checks: parameters "p00", "p01", ... each with the
// integers 0 .. value_count - 1. With 10 values, the digits of a combination in
// parameter order spell its index in decimal.
Grid DigitGrid(int parameter_count, int value_count) {
  std::vector<GridParameter> parameters;
  for (int p = 0; p < parameter_count; ++p) {
    GridParameter& parameter = parameters.emplace_back();
    parameter.name = absl::StrCat(p < 10 ? "p0" : "p", p);
    for (int64_t v = 0; v < value_count; ++v) parameter.values.push_back(Value(v));
  }
  absl::StatusOr<Grid> grid =
      Grid::FromParameters(std::move(parameters), {.check_hyperparameters = false});
  EXPECT_TRUE(grid.ok()) << grid.status();
  return *std::move(grid);
}

// The digits of a DigitGrid combination, most significant parameter first.
std::string Digits(const Assignment& assignment) {
  std::string digits;
  for (const auto& [name, value] : assignment) absl::StrAppend(&digits, std::get<int64_t>(value));
  return digits;
}

std::vector<Assignment> SampleOrDie(const Grid& grid, int64_t grid_size, uint64_t seed) {
  absl::StatusOr<std::vector<Assignment>> sample = SampleCombinations(grid, grid_size, seed);
  EXPECT_TRUE(sample.ok()) << sample.status();
  return sample.ok() ? *std::move(sample) : std::vector<Assignment>();
}

// Pearson's chi-square statistic of observed counts against one common expected count.
double ChiSquare(const std::map<std::string, int>& counts, int cells, double expected) {
  double statistic = 0;
  for (const auto& [cell, count] : counts) statistic += (count - expected) * (count - expected);
  // Cells never observed contribute expected^2 each.
  statistic += (cells - static_cast<int>(counts.size())) * expected * expected;
  return statistic / expected;
}

TEST(SampleCombinationsTest, RejectsNonPositiveGridSize) {
  const Grid grid = DigitGrid(2, 3);
  for (int64_t grid_size : {int64_t{0}, int64_t{-5}}) {
    const absl::StatusOr<std::vector<Assignment>> sample = SampleCombinations(grid, grid_size, 1);
    ASSERT_FALSE(sample.ok());
    EXPECT_EQ(sample.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(
        sample.status().message(),
        absl::StrCat("grid_size ", grid_size, " is not positive; request at least 1 combination"));
  }
}

TEST(SampleCombinationsTest, RejectsGridSizeAboveMaximum) {
  const absl::StatusOr<std::vector<Assignment>> sample =
      SampleCombinations(DigitGrid(20, 10), kMaxGridSize + 1, 1);
  ASSERT_FALSE(sample.ok());
  EXPECT_EQ(sample.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sample.status().message(),
            "grid_size 1000001 is above the maximum 1000000; request at most 1000000 "
            "combinations");
}

TEST(SampleCombinationsTest, AcceptsMaximumGridSize) {
  const std::vector<Assignment> sample = SampleOrDie(DigitGrid(2, 10), kMaxGridSize, 1);
  EXPECT_EQ(sample.size(), 100u);
}

TEST(SampleCombinationsTest, DrawsDistinctCombinationsFromGrid) {
  const absl::StatusOr<Grid> grid = Grid::Parse(
      R"({"batch_size": [32, 64, 128, 256, 512], "keep_prob": [0.25, 0.5, 0.75, 1.0],
          "augmentation": ["none", "flip", "crop"]})");
  ASSERT_TRUE(grid.ok()) << grid.status();
  const std::vector<Assignment> sample = SampleOrDie(*grid, 20, 3);
  ASSERT_EQ(sample.size(), 20u);

  std::set<std::string> seen;
  for (const Assignment& assignment : sample) {
    ASSERT_EQ(assignment.size(), 3u);
    for (size_t p = 0; p < assignment.size(); ++p) {
      const GridParameter& parameter = grid->parameters()[p];
      EXPECT_EQ(assignment[p].first, parameter.name);
      EXPECT_NE(std::find(parameter.values.begin(), parameter.values.end(), assignment[p].second),
                parameter.values.end());
    }
    EXPECT_TRUE(seen.insert(CanonicalJson(assignment)).second) << CanonicalJson(assignment);
  }
}

TEST(SampleCombinationsTest, TakesEveryCombinationWhenGridSizeExceedsCount) {
  const Grid grid = DigitGrid(3, 4);
  const std::vector<Assignment> sample = SampleOrDie(grid, 1000, 11);
  ASSERT_EQ(sample.size(), 64u);

  std::set<std::string> sampled;
  for (const Assignment& assignment : sample) sampled.insert(Digits(assignment));
  std::set<std::string> all;
  std::vector<std::string> in_index_order;
  for (uint64_t i = 0; i < 64; ++i) {
    all.insert(Digits(grid.CombinationAt(i)));
    in_index_order.push_back(Digits(grid.CombinationAt(i)));
  }
  EXPECT_EQ(sampled, all);

  std::vector<std::string> in_sample_order;
  for (const Assignment& assignment : sample) in_sample_order.push_back(Digits(assignment));
  EXPECT_NE(in_sample_order, in_index_order);
}

TEST(SampleCombinationsTest, GridSizeEqualToCountTakesEveryCombination) {
  const Grid grid = DigitGrid(2, 3);
  std::set<std::string> sampled;
  for (const Assignment& assignment : SampleOrDie(grid, 9, 5)) sampled.insert(Digits(assignment));
  EXPECT_EQ(sampled.size(), 9u);
}

TEST(SampleCombinationsTest, SameSeedGivesSameSequence) {
  const Grid grid = DigitGrid(6, 10);
  EXPECT_EQ(SampleOrDie(grid, 50, 1234), SampleOrDie(grid, 50, 1234));
  EXPECT_NE(SampleOrDie(grid, 50, 1234), SampleOrDie(grid, 50, 1235));

  const Grid huge = DigitGrid(20, 10);
  EXPECT_EQ(SampleOrDie(huge, 50, 1234), SampleOrDie(huge, 50, 1234));
  EXPECT_NE(SampleOrDie(huge, 50, 1234), SampleOrDie(huge, 50, 1235));
}

// These lists pin the sampling rule documented in common/search_space.h and the output
// of std::mt19937_64: they must match on every machine and compiler. A change here
// changes which trials an existing sweep seed selects.
TEST(SampleCombinationsTest, GoldenSampleForFixedSeed) {
  const absl::StatusOr<Grid> grid = Grid::Parse(
      R"({"batch_size": [32, 64, 128], "learning_rate": [0.1, 0.01, 0.001, 0.0001],
          "augmentation": ["none", "flip"], "keep_prob": [0.5, 1]})");
  ASSERT_TRUE(grid.ok()) << grid.status();
  std::vector<std::string> sampled;
  for (const Assignment& assignment : SampleOrDie(*grid, 5, 42)) {
    sampled.push_back(CanonicalJson(assignment));
  }
  const std::vector<std::string> expected = {
      R"({"augmentation":"flip","batch_size":128,"keep_prob":0.5,"learning_rate":0.1})",
      R"({"augmentation":"none","batch_size":64,"keep_prob":0.5,"learning_rate":0.001})",
      R"({"augmentation":"none","batch_size":64,"keep_prob":1.0,"learning_rate":0.001})",
      R"({"augmentation":"none","batch_size":128,"keep_prob":1.0,"learning_rate":0.001})",
      R"({"augmentation":"none","batch_size":128,"keep_prob":1.0,"learning_rate":0.01})",
  };
  EXPECT_EQ(sampled, expected);
}

TEST(SampleCombinationsTest, GoldenSampleBeyond64Bits) {
  std::vector<std::string> sampled;
  for (const Assignment& assignment : SampleOrDie(DigitGrid(20, 10), 4, 42)) {
    sampled.push_back(Digits(assignment));
  }
  const std::vector<std::string> expected = {
      "90449347748266645845",
      "13930160852258120406",
      "10598951352238613536",
      "23498829536872234166",
  };
  EXPECT_EQ(sampled, expected);
}

TEST(SampleCombinationsTest, GoldenSampleOfWholeGrid) {
  std::vector<std::string> sampled;
  for (const Assignment& assignment : SampleOrDie(DigitGrid(2, 3), 100, 42)) {
    sampled.push_back(Digits(assignment));
  }
  const std::vector<std::string> expected = {"01", "22", "10", "21", "11", "12", "02", "00", "20"};
  EXPECT_EQ(sampled, expected);
}

TEST(CombinationAtTest, FollowsItertoolsProductOrder) {
  const absl::StatusOr<Grid> grid =
      Grid::FromParameters({{"b", {Value(int64_t{1}), Value(int64_t{2}), Value(int64_t{3})}},
                            {"a", {Value(std::string("x")), Value(std::string("y"))}}},
                           {.check_hyperparameters = false});
  ASSERT_TRUE(grid.ok()) << grid.status();
  const std::vector<std::string> expected = {
      R"({"a":"x","b":1})", R"({"a":"x","b":2})", R"({"a":"x","b":3})",
      R"({"a":"y","b":1})", R"({"a":"y","b":2})", R"({"a":"y","b":3})",
  };
  for (uint64_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(CanonicalJson(grid->CombinationAt(i)), expected[i]) << "index " << i;
  }
}

TEST(CombinationCountTest, ExactBeyond64Bits) {
  const Grid twenty = DigitGrid(20, 10);
  EXPECT_EQ(twenty.CombinationCountDecimal(), "100000000000000000000");
  EXPECT_EQ(twenty.CombinationCountCapped(std::numeric_limits<int64_t>::max()),
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(twenty.CombinationCountCapped(1000), 1000);

  const Grid forty = DigitGrid(40, 10);
  EXPECT_EQ(forty.CombinationCountDecimal(), "1" + std::string(40, '0'));

  const Grid two_to_the_64 = DigitGrid(64, 2);
  EXPECT_EQ(two_to_the_64.CombinationCountDecimal(), "18446744073709551616");
}

TEST(SampleCombinationsTest, SamplesTenThousandFromHugeGridQuickly) {
  const Grid grid = DigitGrid(20, 10);
  const auto start = std::chrono::steady_clock::now();
  const std::vector<Assignment> sample = SampleOrDie(grid, 10000, 99);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(sample.size(), 10000u);

  std::set<std::string> distinct;
  for (const Assignment& assignment : sample) distinct.insert(Digits(assignment));
  EXPECT_EQ(distinct.size(), 10000u);
  // Building the product would never finish; sampling takes milliseconds (see
  // docs/benchmarks.md). The bound is loose so that a loaded machine still passes.
  EXPECT_LT(elapsed, std::chrono::seconds(10));
}

TEST(SampleCombinationsTest, SamplesAcrossTwoTo64Boundary) {
  const Grid grid = DigitGrid(64, 2);  // 2^64 combinations: one more than uint64_t can represent.
  std::set<std::string> distinct;
  for (const Assignment& assignment : SampleOrDie(grid, 1000, 8)) {
    distinct.insert(Digits(assignment));
  }
  EXPECT_EQ(distinct.size(), 1000u);
}

// Uniformity checks: with fixed seeds each statistic is a fixed number, compared with
// the chi-square quantile at p = 0.001 for its degrees of freedom, so a biased sampler
// fails while a correct one passes on every run.

TEST(SampleUniformityTest, SubsetsAreUniform) {
  // 2 of 6 values: 15 unordered pairs, 14 degrees of freedom.
  const Grid grid = DigitGrid(1, 6);
  constexpr int kDraws = 15000;
  std::map<std::string, int> counts;
  for (int seed = 0; seed < kDraws; ++seed) {
    std::vector<std::string> pair;
    for (const Assignment& assignment : SampleOrDie(grid, 2, seed)) {
      pair.push_back(Digits(assignment));
    }
    std::sort(pair.begin(), pair.end());
    ++counts[pair[0] + pair[1]];
  }
  EXPECT_EQ(counts.size(), 15u);
  EXPECT_LT(ChiSquare(counts, 15, kDraws / 15.0), 36.123);
}

TEST(SampleUniformityTest, OrderedSamplesAreUniform) {
  // 3 of 5 values in order: 60 sequences, 59 degrees of freedom.
  const Grid grid = DigitGrid(1, 5);
  constexpr int kDraws = 60000;
  std::map<std::string, int> counts;
  for (int seed = 0; seed < kDraws; ++seed) {
    std::string sequence;
    for (const Assignment& assignment : SampleOrDie(grid, 3, seed)) sequence += Digits(assignment);
    ++counts[sequence];
  }
  EXPECT_EQ(counts.size(), 60u);
  EXPECT_LT(ChiSquare(counts, 60, kDraws / 60.0), 98.324);
}

TEST(SampleUniformityTest, PermutationsOfWholeGridAreUniform) {
  // All 4 values: 24 orders, 23 degrees of freedom.
  const Grid grid = DigitGrid(1, 4);
  constexpr int kDraws = 24000;
  std::map<std::string, int> counts;
  for (int seed = 0; seed < kDraws; ++seed) {
    std::string order;
    for (const Assignment& assignment : SampleOrDie(grid, 4, seed)) order += Digits(assignment);
    ++counts[order];
  }
  EXPECT_EQ(counts.size(), 24u);
  EXPECT_LT(ChiSquare(counts, 24, kDraws / 24.0), 49.728);
}

TEST(SampleUniformityTest, DigitsOfHugeGridAreUniform) {
  // 10^20 combinations: the most and least significant digits of 10,000 sampled indices,
  // 9 degrees of freedom each. The most significant digit depends on the top bits of the
  // multiword random integers.
  const Grid grid = DigitGrid(20, 10);
  constexpr int kDraws = 10000;
  std::map<std::string, int> first;
  std::map<std::string, int> last;
  for (const Assignment& assignment : SampleOrDie(grid, kDraws, 2024)) {
    const std::string digits = Digits(assignment);
    ++first[digits.substr(0, 1)];
    ++last[digits.substr(19, 1)];
  }
  EXPECT_LT(ChiSquare(first, 10, kDraws / 10.0), 27.877);
  EXPECT_LT(ChiSquare(last, 10, kDraws / 10.0), 27.877);
}

}  // namespace
}  // namespace sweep
