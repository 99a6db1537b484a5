#include "common/refine.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/search_space.h"
#include "gtest/gtest.h"

namespace sweep {
namespace {

Grid ParseOrDie(const std::string& json) {
  absl::StatusOr<Grid> grid = Grid::Parse(json);
  EXPECT_TRUE(grid.ok()) << grid.status();
  return *std::move(grid);
}

Value Int(int64_t value) { return Value(value); }
Value Text(const char* value) { return Value(std::string(value)); }

TEST(RefineGridTest, GeometricMidpointsForSizes) {
  const Grid parent = ParseOrDie(R"({"batch_size": [32, 64, 128, 256]})");
  const absl::StatusOr<Grid> fine = RefineGrid(parent, {{{"batch_size", Int(128)}}});
  ASSERT_TRUE(fine.ok()) << fine.status();
  const std::vector<GridParameter> expected = {{"batch_size", {Int(91), Int(128), Int(181)}}};
  EXPECT_EQ(fine->parameters(), expected);
}

TEST(RefineGridTest, ArithmeticMidpointsForKeepProb) {
  const Grid parent = ParseOrDie(R"({"keep_prob": [1, 0.25, 0.5]})");
  const absl::StatusOr<Grid> fine =
      RefineGrid(parent, {{{"keep_prob", Value(0.5)}}, {{"keep_prob", Value(1.0)}}});
  ASSERT_TRUE(fine.ok()) << fine.status();
  const std::vector<GridParameter> expected = {
      {"keep_prob", {Value(0.375), Value(0.5), Value(0.75), Value(1.0)}}};
  EXPECT_EQ(fine->parameters(), expected);
}

TEST(RefineGridTest, GeometricMidpointsForLearningRate) {
  const Grid parent = ParseOrDie(R"({"learning_rate": [0.1, 0.01, 0.001]})");
  const absl::StatusOr<Grid> fine = RefineGrid(parent, {{{"learning_rate", Value(0.01)}}});
  ASSERT_TRUE(fine.ok()) << fine.status();
  // sqrt(0.001 * 0.01) and sqrt(0.01 * 0.1) in IEEE double arithmetic.
  const std::vector<GridParameter> expected = {
      {"learning_rate", {Value(0.0031622776601683794), Value(0.01), Value(0.03162277660168379)}}};
  EXPECT_EQ(fine->parameters(), expected);
}

TEST(RefineGridTest, EdgeValueHasOneNeighbour) {
  const Grid parent = ParseOrDie(R"({"conv1_depth": [64, 16, 32]})");
  const absl::StatusOr<Grid> fine = RefineGrid(parent, {{{"conv1_depth", Int(16)}}});
  ASSERT_TRUE(fine.ok()) << fine.status();
  // sqrt(16 * 32) = 22.6 rounds to 23.
  const std::vector<GridParameter> expected = {{"conv1_depth", {Int(16), Int(23)}}};
  EXPECT_EQ(fine->parameters(), expected);
}

TEST(RefineGridTest, RoundedMidpointEqualToNeighbourIsDeduplicated) {
  const Grid parent = ParseOrDie(R"({"dense_layer_units": [1, 2, 4]})");
  const absl::StatusOr<Grid> fine = RefineGrid(parent, {{{"dense_layer_units", Int(1)}}});
  ASSERT_TRUE(fine.ok()) << fine.status();
  // sqrt(1 * 2) = 1.41 rounds to 1, the top value itself.
  const std::vector<GridParameter> expected = {{"dense_layer_units", {Int(1)}}};
  EXPECT_EQ(fine->parameters(), expected);
}

TEST(RefineGridTest, KeepsTopValuesForEpochsAndAugmentation) {
  const Grid parent =
      ParseOrDie(R"({"num_epochs": [5, 1, 10], "augmentation": ["none", "flip", "crop"]})");
  const std::vector<Assignment> top = {
      {{"augmentation", Text("crop")}, {"num_epochs", Int(10)}},
      {{"augmentation", Text("none")}, {"num_epochs", Int(1)}},
      {{"augmentation", Text("crop")}, {"num_epochs", Int(1)}},
  };
  const absl::StatusOr<Grid> fine = RefineGrid(parent, top);
  ASSERT_TRUE(fine.ok()) << fine.status();
  const std::vector<GridParameter> expected = {
      {"augmentation", {Text("none"), Text("crop")}},
      {"num_epochs", {Int(1), Int(10)}},
  };
  EXPECT_EQ(fine->parameters(), expected);
}

TEST(RefineGridTest, RefinesEveryParameterOfFullGrid) {
  const Grid parent = ParseOrDie(R"({
      "conv1_depth": [16, 32, 64], "conv2_depth": [32, 64, 128],
      "dense_layer_units": [256, 1024], "batch_size": [64, 256],
      "num_epochs": [2, 8], "keep_prob": [0.5, 0.75, 1.0],
      "learning_rate": [0.0001, 0.01], "augmentation": ["none", "flip"]})");
  const std::vector<Assignment> top = {
      {{"augmentation", Text("flip")},
       {"batch_size", Int(64)},
       {"conv1_depth", Int(32)},
       {"conv2_depth", Int(128)},
       {"dense_layer_units", Int(1024)},
       {"keep_prob", Value(0.75)},
       {"learning_rate", Value(0.0001)},
       {"num_epochs", Int(8)}},
      {{"augmentation", Text("flip")},
       {"batch_size", Int(64)},
       {"conv1_depth", Int(64)},
       {"conv2_depth", Int(128)},
       {"dense_layer_units", Int(256)},
       {"keep_prob", Value(0.75)},
       {"learning_rate", Value(0.0001)},
       {"num_epochs", Int(8)}},
  };
  const absl::StatusOr<Grid> fine = RefineGrid(parent, top);
  ASSERT_TRUE(fine.ok()) << fine.status();
  const std::vector<GridParameter> expected = {
      {"augmentation", {Text("flip")}},
      {"batch_size", {Int(64), Int(128)}},
      {"conv1_depth", {Int(23), Int(32), Int(45), Int(64)}},
      {"conv2_depth", {Int(91), Int(128)}},
      {"dense_layer_units", {Int(256), Int(512), Int(1024)}},
      {"keep_prob", {Value(0.625), Value(0.75), Value(0.875)}},
      {"learning_rate", {Value(0.0001), Value(0.001)}},
      {"num_epochs", {Int(8)}},
  };
  EXPECT_EQ(fine->parameters(), expected);

  // The refined grid passes the hyperparameter checks.
  EXPECT_TRUE(Grid::Parse(fine->CanonicalJson()).ok());
}

TEST(RefineGridTest, OtherNumericParametersKeepTopValues) {
  const absl::StatusOr<Grid> parent =
      Grid::FromParameters({{"x", {Int(30), Int(10), Int(20)}}}, {.check_hyperparameters = false});
  ASSERT_TRUE(parent.ok()) << parent.status();
  const absl::StatusOr<Grid> fine = RefineGrid(*parent, {{{"x", Int(30)}}, {{"x", Int(10)}}});
  ASSERT_TRUE(fine.ok()) << fine.status();
  const std::vector<GridParameter> expected = {{"x", {Int(10), Int(30)}}};
  EXPECT_EQ(fine->parameters(), expected);
}

TEST(RefineGridTest, RejectsBadTopAssignments) {
  const Grid parent = ParseOrDie(R"({"batch_size": [32, 64], "num_epochs": [1, 2]})");
  struct Case {
    const char* label;
    std::vector<Assignment> top;
    const char* message;
  };
  const std::vector<Case> cases = {
      {"none", {}, "refine: no top assignments; pass at least one"},
      {"missing parameter",
       {{{"batch_size", Int(32)}, {"num_epochs", Int(1)}}, {{"batch_size", Int(64)}}},
       R"(refine: top assignment 1 has no value for "num_epochs"; pass assignments from the parent grid)"},
      {"value not in parent",
       {{{"batch_size", Int(48)}, {"num_epochs", Int(1)}}},
       R"(refine: top assignment 0 gives "batch_size" the value 48, which the parent grid does not list; pass assignments from the parent grid)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    const absl::StatusOr<Grid> fine = RefineGrid(parent, c.top);
    ASSERT_FALSE(fine.ok());
    EXPECT_EQ(fine.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(fine.status().message(), c.message);
  }
}

}  // namespace
}  // namespace sweep
