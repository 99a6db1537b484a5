#include "common/hyperparameters.h"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace sweep {
namespace {

TEST(HyperparametersTest, KnownNamesAreSorted) {
  const std::vector<std::string> expected = {"augmentation",  "batch_size",        "conv1_depth",
                                             "conv2_depth",   "dense_layer_units", "keep_prob",
                                             "learning_rate", "num_epochs"};
  EXPECT_EQ(KnownHyperparameterNames(), expected);
}

TEST(HyperparametersTest, AcceptsDomainBoundaries) {
  struct Case {
    const char* name;
    Value value;
  };
  const std::vector<Case> cases = {
      {"conv1_depth", Value(int64_t{1})},
      {"conv1_depth", Value(kMaxLayerWidth)},
      {"conv2_depth", Value(kMaxLayerWidth)},
      {"dense_layer_units", Value(kMaxLayerWidth)},
      {"batch_size", Value(kMaxBatchSize)},
      {"num_epochs", Value(kMaxEpochs)},
      {"keep_prob", Value(1.0)},
      {"keep_prob", Value(int64_t{1})},
      {"keep_prob", Value(1e-9)},
      {"learning_rate", Value(1e-300)},
      {"learning_rate", Value(int64_t{2})},
      {"augmentation", Value(std::string("flip_crop"))},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.name) + " = " + FormatValueAsJson(c.value));
    EXPECT_TRUE(ValidateHyperparameter(c.name, c.value).ok());
  }
}

TEST(HyperparametersTest, RejectsValuesWithDomainInMessage) {
  struct Case {
    const char* name;
    Value value;
    const char* message;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double infinity = std::numeric_limits<double>::infinity();
  const std::vector<Case> cases = {
      {"lr", Value(0.1),
       R"(hyperparameter "lr" is unknown; use one of augmentation, batch_size, conv1_depth, conv2_depth, dense_layer_units, keep_prob, learning_rate, num_epochs)"},
      {"batch_size", Value(int64_t{0}),
       R"(hyperparameter "batch_size": value 0 is not a positive integer; use an integer from 1 to 65536)"},
      {"conv1_depth", Value(32.0),
       R"(hyperparameter "conv1_depth": value 32.0 is not an integer; use an integer from 1 to 4096)"},
      {"dense_layer_units", Value(int64_t{4097}),
       R"(hyperparameter "dense_layer_units": value 4097 is above the maximum 4096; use an integer from 1 to 4096)"},
      {"num_epochs", Value(true),
       R"(hyperparameter "num_epochs": value true is not an integer; use an integer from 1 to 1000)"},
      {"keep_prob", Value(nan),
       R"(hyperparameter "keep_prob": value nan is outside (0, 1]; use a number greater than 0 and at most 1)"},
      {"keep_prob", Value(int64_t{2}),
       R"(hyperparameter "keep_prob": value 2 is outside (0, 1]; use a number greater than 0 and at most 1)"},
      {"learning_rate", Value(infinity),
       R"(hyperparameter "learning_rate": value inf is not a positive finite number; use a positive finite number such as 0.001)"},
      {"learning_rate", Value(std::string("fast")),
       R"(hyperparameter "learning_rate": value "fast" is not a number; use a positive finite number such as 0.001)"},
      {"augmentation", Value(std::string("Flip")),
       R"(hyperparameter "augmentation": value "Flip" is not a known augmentation; use one of none, flip, crop, flip_crop)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    const absl::Status status = ValidateHyperparameter(c.name, c.value);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(status.message(), c.message);
  }
}

TEST(HyperparametersFromAssignmentTest, FillsDefaults) {
  const absl::StatusOr<Hyperparameters> result = HyperparametersFromAssignment({});
  ASSERT_TRUE(result.ok()) << result.status();
  const Hyperparameters defaults;
  EXPECT_EQ(result->conv1_depth, 32);
  EXPECT_EQ(result->conv2_depth, 64);
  EXPECT_EQ(result->dense_layer_units, 1024);
  EXPECT_EQ(result->batch_size, 128);
  EXPECT_EQ(result->num_epochs, 5);
  EXPECT_EQ(result->keep_prob, 0.5);
  EXPECT_EQ(result->learning_rate, 1e-3);
  EXPECT_EQ(result->augmentation, Augmentation::kNone);
  EXPECT_EQ(defaults.keep_prob, result->keep_prob);
}

TEST(HyperparametersFromAssignmentTest, SetsEveryField) {
  const Assignment assignment = {
      {"augmentation", Value(std::string("flip_crop"))},
      {"batch_size", Value(int64_t{256})},
      {"conv1_depth", Value(int64_t{16})},
      {"conv2_depth", Value(int64_t{48})},
      {"dense_layer_units", Value(int64_t{512})},
      {"keep_prob", Value(int64_t{1})},
      {"learning_rate", Value(1e-05)},
      {"num_epochs", Value(int64_t{12})},
  };
  const absl::StatusOr<Hyperparameters> result = HyperparametersFromAssignment(assignment);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->augmentation, Augmentation::kFlipAndCrop);
  EXPECT_EQ(result->batch_size, 256);
  EXPECT_EQ(result->conv1_depth, 16);
  EXPECT_EQ(result->conv2_depth, 48);
  EXPECT_EQ(result->dense_layer_units, 512);
  EXPECT_EQ(result->keep_prob, 1.0);
  EXPECT_EQ(result->learning_rate, 1e-05);
  EXPECT_EQ(result->num_epochs, 12);
}

TEST(HyperparametersFromAssignmentTest, RejectsRepeatedName) {
  const absl::StatusOr<Hyperparameters> result = HyperparametersFromAssignment(
      {{"batch_size", Value(int64_t{32})}, {"batch_size", Value(int64_t{64})}});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      result.status().message(),
      R"(hyperparameter "batch_size" appears twice in the assignment; give each hyperparameter once)");
}

TEST(HyperparametersFromAssignmentTest, RejectsInvalidValue) {
  const absl::StatusOr<Hyperparameters> result =
      HyperparametersFromAssignment({{"keep_prob", Value(0.0)}});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(
      result.status().message(),
      R"(hyperparameter "keep_prob": value 0.0 is outside (0, 1]; use a number greater than 0 and at most 1)");
}

TEST(AugmentationTest, NamesRoundTrip) {
  const std::vector<std::pair<Augmentation, std::string>> cases = {
      {Augmentation::kNone, "none"},
      {Augmentation::kFlip, "flip"},
      {Augmentation::kCrop, "crop"},
      {Augmentation::kFlipAndCrop, "flip_crop"},
  };
  for (const auto& [augmentation, name] : cases) {
    EXPECT_EQ(AugmentationName(augmentation), name);
    EXPECT_EQ(ParseAugmentation(name), augmentation);
  }
  EXPECT_EQ(ParseAugmentation("rotate"), std::nullopt);
}

TEST(HyperparametersTest, DoubleHyperparameters) {
  EXPECT_TRUE(IsDoubleHyperparameter("keep_prob"));
  EXPECT_TRUE(IsDoubleHyperparameter("learning_rate"));
  EXPECT_FALSE(IsDoubleHyperparameter("batch_size"));
  EXPECT_FALSE(IsDoubleHyperparameter("unknown"));
}

}  // namespace
}  // namespace sweep
