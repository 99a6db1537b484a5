#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/search_space.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace sweep {
namespace {

using ::testing::StartsWith;

struct RejectionCase {
  const char* label;
  std::string json;
  std::string message;
};

void ExpectRejected(const RejectionCase& c, GridOptions options = {}) {
  SCOPED_TRACE(c.label);
  const absl::StatusOr<Grid> grid = Grid::Parse(c.json, options);
  ASSERT_FALSE(grid.ok());
  EXPECT_EQ(grid.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(grid.status().message(), c.message);
}

TEST(GridParseTest, RejectsMalformedJsonWithPosition) {
  // The text after the position comes from nlohmann::json, so only the prefix is exact.
  const RejectionCase cases[] = {
      {"empty input", "", "grid: invalid JSON at line 1, column 1: "},
      {"trailing comma", R"({"batch_size": [1,]})", "grid: invalid JSON at line 1, column 19: "},
      {"second line", "{\n  \"batch_size\": [1 2]\n}", "grid: invalid JSON at line 2, column 20: "},
      {"third line", "{\n  \"batch_size\": [1,\n  ]\n}",
       "grid: invalid JSON at line 3, column 3: "},
      {"unclosed object", R"({"batch_size": [1])", "grid: invalid JSON at line 1, column 19: "},
      {"trailing text", "{} x", "grid: invalid JSON at line 1, column 4: "},
      {"invalid UTF-8", "{\"augmentation\": [\"\xff\"]}",
       "grid: invalid JSON at line 1, column 20: "},
      {"single quotes", "{'batch_size': [1]}", "grid: invalid JSON at line 1, column 2: "},
      {"number overflow outside a list", R"({"keep_prob": 1e999})",
       "grid: invalid JSON at line 1, column 19: "},
  };
  for (const RejectionCase& c : cases) {
    SCOPED_TRACE(c.label);
    const absl::StatusOr<Grid> grid = Grid::Parse(c.json);
    ASSERT_FALSE(grid.ok());
    EXPECT_EQ(grid.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(grid.status().message()), StartsWith(c.message));
  }
}

TEST(GridParseTest, MalformedJsonKeepsParserReason) {
  const absl::StatusOr<Grid> grid = Grid::Parse(R"({"batch_size": [1,]})");
  ASSERT_FALSE(grid.ok());
  EXPECT_EQ(grid.status().message(),
            "grid: invalid JSON at line 1, column 19: syntax error while parsing value - "
            "unexpected ']'; expected '[', '{', or a literal");
}

TEST(GridParseTest, RejectsWrongShapes) {
  const std::string top_fix =
      ", not an object; write an object that maps each hyperparameter name to a list of values";
  const std::string list_fix = ", not a list; write the values as a list such as [1, 2]";
  const RejectionCase cases[] = {
      {"top-level array", "[1, 2]", "grid: the top-level JSON value is an array" + top_fix},
      {"top-level number", "42", "grid: the top-level JSON value is a number" + top_fix},
      {"top-level string", R"("grid")", "grid: the top-level JSON value is a string" + top_fix},
      {"top-level null", "null", "grid: the top-level JSON value is null" + top_fix},
      {"top-level boolean", "true", "grid: the top-level JSON value is a boolean" + top_fix},
      {"empty object", "{}",
       "grid: no parameters; add at least one hyperparameter with a list of values"},
      {"empty list", R"({"batch_size": []})",
       R"(grid parameter "batch_size": the list is empty; give at least one value)"},
      {"scalar number", R"({"batch_size": 32})",
       R"(grid parameter "batch_size": the value is a number)" + list_fix},
      {"scalar string", R"({"augmentation": "flip"})",
       R"(grid parameter "augmentation": the value is a string)" + list_fix},
      {"scalar boolean", R"({"augmentation": false})",
       R"(grid parameter "augmentation": the value is a boolean)" + list_fix},
      {"huge integer scalar", R"({"batch_size": 99999999999999999999})",
       R"(grid parameter "batch_size": the value is a number)" + list_fix},
      {"object value", R"({"batch_size": {"min": 1}})",
       R"(grid parameter "batch_size": the value is an object)" + list_fix},
      {"null value", R"({"batch_size": null})",
       R"(grid parameter "batch_size": the value is null)" + list_fix},
      {"nested array", R"({"batch_size": [32, [64]]})",
       R"(grid parameter "batch_size": element 1 is a nested array; list only numbers, strings or booleans)"},
      {"nested object", R"({"batch_size": [{"value": 32}]})",
       R"(grid parameter "batch_size": element 0 is a nested object; list only numbers, strings or booleans)"},
      {"null element", R"({"batch_size": [32, null]})",
       R"(grid parameter "batch_size": element 1 is null; remove it or replace it with a value)"},
  };
  for (const RejectionCase& c : cases) ExpectRejected(c);
}

TEST(GridParseTest, RejectsMixedKindsAndDuplicates) {
  const RejectionCase cases[] = {
      {"string after string", R"({"augmentation": ["flip", 1]})",
       R"(grid parameter "augmentation": element 1 (1) is a number, but element 0 ("flip") is a string; use values of one kind in a list)"},
      {"boolean after number", R"({"batch_size": [32, 64, true]})",
       R"(grid parameter "batch_size": element 2 (true) is a boolean, but element 0 (32) is a number; use values of one kind in a list)"},
      {"duplicate integer", R"({"batch_size": [32, 64, 32]})",
       R"(grid parameter "batch_size": element 2 (32) duplicates element 0 (32); list each value once)"},
      {"duplicate float spelled twice", R"({"keep_prob": [0.1, 0.5, 0.10]})",
       R"(grid parameter "keep_prob": element 2 (0.10) duplicates element 0 (0.1); list each value once)"},
      {"integer and float equal", R"({"learning_rate": [0.1, 1, 1.0]})",
       R"(grid parameter "learning_rate": element 2 (1.0) duplicates element 1 (1); list each value once)"},
      {"duplicate string", R"({"augmentation": ["none", "flip", "none"]})",
       R"(grid parameter "augmentation": element 2 ("none") duplicates element 0 ("none"); list each value once)"},
      {"duplicate key", R"({"batch_size": [32], "num_epochs": [1], "batch_size": [64]})",
       R"(grid parameter "batch_size" appears twice (entries 0 and 2); give one list for it)"},
      {"duplicate key with same list", R"({"num_epochs": [1], "num_epochs": [1]})",
       R"(grid parameter "num_epochs" appears twice (entries 0 and 1); give one list for it)"},
  };
  for (const RejectionCase& c : cases) ExpectRejected(c);
}

TEST(GridParseTest, RejectsNumbersThatWouldChange) {
  const RejectionCase cases[] = {
      {"above int64", R"({"batch_size": [9223372036854775808]})",
       R"(grid parameter "batch_size": element 0 (9223372036854775808) is outside the 64-bit integer range; use an integer from -9223372036854775808 to 9223372036854775807)"},
      {"above uint64", R"({"batch_size": [1, 18446744073709551616]})",
       R"(grid parameter "batch_size": element 1 (18446744073709551616) is outside the 64-bit integer range; use an integer from -9223372036854775808 to 9223372036854775807)"},
      {"below int64", R"({"batch_size": [-9223372036854775809]})",
       R"(grid parameter "batch_size": element 0 (-9223372036854775809) is outside the 64-bit integer range; use an integer from -9223372036854775808 to 9223372036854775807)"},
      {"double overflow", R"({"learning_rate": [0.1, 1e400]})",
       R"(grid parameter "learning_rate": element 1 (1e400) is outside the double range; use a finite number of magnitude below 1.8e308)"},
      {"double underflow", R"({"learning_rate": [1e-400]})",
       R"(grid parameter "learning_rate": element 0 (1e-400) is too small for a double and would read as 0; write 0 or a number of larger magnitude)"},
  };
  for (const RejectionCase& c : cases) ExpectRejected(c);
}

TEST(GridParseTest, RejectsIntegerWithoutExactDoubleInFloatList) {
  ExpectRejected(
      {"2^53 + 1", R"({"x": [0.5, 9007199254740993]})",
       R"(grid parameter "x": element 1 (9007199254740993) cannot be stored exactly as a double, which this list requires; use an integer of magnitude at most 2^53)"},
      {.check_hyperparameters = false});
}

TEST(GridParseTest, RejectsUnknownNames) {
  ExpectRejected(
      {"unknown", R"({"batch_size": [32], "lr": [0.1]})",
       R"(grid parameter "lr" is not a known hyperparameter; use one of augmentation, batch_size, conv1_depth, conv2_depth, dense_layer_units, keep_prob, learning_rate, num_epochs)"});
}

TEST(GridParseTest, RejectsValuesOutsideDomains) {
  const RejectionCase cases[] = {
      {"zero batch", R"({"batch_size": [32, 64, 0]})",
       R"(grid parameter "batch_size": element 2 (0) is not a positive integer; use an integer from 1 to 65536)"},
      {"negative depth", R"({"conv2_depth": [-8]})",
       R"(grid parameter "conv2_depth": element 0 (-8) is not a positive integer; use an integer from 1 to 4096)"},
      {"float depth", R"({"conv1_depth": [32.0]})",
       R"(grid parameter "conv1_depth": element 0 (32.0) is not an integer; use an integer from 1 to 4096)"},
      {"string units", R"({"dense_layer_units": ["wide"]})",
       R"(grid parameter "dense_layer_units": element 0 ("wide") is not an integer; use an integer from 1 to 4096)"},
      {"huge depth", R"({"conv1_depth": [4097]})",
       R"(grid parameter "conv1_depth": element 0 (4097) is above the maximum 4096; use an integer from 1 to 4096)"},
      {"huge batch", R"({"batch_size": [65537]})",
       R"(grid parameter "batch_size": element 0 (65537) is above the maximum 65536; use an integer from 1 to 65536)"},
      {"huge epochs", R"({"num_epochs": [5, 1001]})",
       R"(grid parameter "num_epochs": element 1 (1001) is above the maximum 1000; use an integer from 1 to 1000)"},
      {"zero keep_prob", R"({"keep_prob": [0]})",
       R"(grid parameter "keep_prob": element 0 (0) is outside (0, 1]; use a number greater than 0 and at most 1)"},
      {"keep_prob above 1", R"({"keep_prob": [0.5, 1.5]})",
       R"(grid parameter "keep_prob": element 1 (1.5) is outside (0, 1]; use a number greater than 0 and at most 1)"},
      {"string keep_prob", R"({"keep_prob": ["half"]})",
       R"(grid parameter "keep_prob": element 0 ("half") is not a number; use a number greater than 0 and at most 1)"},
      {"negative rate", R"({"learning_rate": [-0.1]})",
       R"(grid parameter "learning_rate": element 0 (-0.1) is not a positive finite number; use a positive finite number such as 0.001)"},
      {"zero rate", R"({"learning_rate": [0.0]})",
       R"(grid parameter "learning_rate": element 0 (0.0) is not a positive finite number; use a positive finite number such as 0.001)"},
      {"boolean rate", R"({"learning_rate": [true]})",
       R"(grid parameter "learning_rate": element 0 (true) is not a number; use a positive finite number such as 0.001)"},
      {"unknown augmentation", R"({"augmentation": ["none", "rotate"]})",
       R"(grid parameter "augmentation": element 1 ("rotate") is not a known augmentation; use one of none, flip, crop, flip_crop)"},
      {"numeric augmentation", R"({"augmentation": [1]})",
       R"(grid parameter "augmentation": element 0 (1) is not a string; use one of none, flip, crop, flip_crop)"},
  };
  for (const RejectionCase& c : cases) ExpectRejected(c);
}

TEST(GridParseTest, EscapesNamesInMessages) {
  ExpectRejected({"quote in name", R"({"a\"b": []})",
                  R"(grid parameter "a\"b": the list is empty; give at least one value)"},
                 {.check_hyperparameters = false});
}

TEST(GridParseTest, SortsParametersAndKeepsValueOrder) {
  const absl::StatusOr<Grid> grid = Grid::Parse(
      R"({"num_epochs": [3, 1], "augmentation": ["flip_crop", "none"], "batch_size": [64]})");
  ASSERT_TRUE(grid.ok()) << grid.status();
  const std::vector<GridParameter> expected = {
      {"augmentation", {Value(std::string("flip_crop")), Value(std::string("none"))}},
      {"batch_size", {Value(int64_t{64})}},
      {"num_epochs", {Value(int64_t{3}), Value(int64_t{1})}},
  };
  EXPECT_EQ(grid->parameters(), expected);
}

TEST(GridParseTest, StoresIntegersAsDoublesInFloatLists) {
  const absl::StatusOr<Grid> unchecked = Grid::Parse(
      R"({"x": [1, 0.5], "y": [1, 2], "z": [true, false]})", {.check_hyperparameters = false});
  ASSERT_TRUE(unchecked.ok()) << unchecked.status();
  const std::vector<GridParameter> expected = {
      {"x", {Value(1.0), Value(0.5)}},
      {"y", {Value(int64_t{1}), Value(int64_t{2})}},
      {"z", {Value(true), Value(false)}},
  };
  EXPECT_EQ(unchecked->parameters(), expected);
}

TEST(GridParseTest, StoresDoubleHyperparametersAsDoubles) {
  const absl::StatusOr<Grid> grid = Grid::Parse(R"({"keep_prob": [1], "learning_rate": [2]})");
  ASSERT_TRUE(grid.ok()) << grid.status();
  const std::vector<GridParameter> expected = {
      {"keep_prob", {Value(1.0)}},
      {"learning_rate", {Value(2.0)}},
  };
  EXPECT_EQ(grid->parameters(), expected);
  EXPECT_EQ(grid->CanonicalJson(), R"({"keep_prob":[1.0],"learning_rate":[2.0]})");
}

TEST(GridParseTest, KeepsExactDoublesThroughCanonicalJson) {
  const absl::StatusOr<Grid> grid =
      Grid::Parse(R"({"keep_prob": [0.4, 0.1], "learning_rate": [1e-05, 0.001, 3e-4]})");
  ASSERT_TRUE(grid.ok()) << grid.status();
  const std::string canonical = grid->CanonicalJson();
  EXPECT_EQ(canonical, R"({"keep_prob":[0.4,0.1],"learning_rate":[1e-05,0.001,0.0003]})");

  const absl::StatusOr<Grid> reparsed = Grid::Parse(canonical);
  ASSERT_TRUE(reparsed.ok()) << reparsed.status();
  EXPECT_EQ(*reparsed, *grid);
  const double keep_prob = std::get<double>(reparsed->parameters()[0].values[0]);
  const double learning_rate = std::get<double>(reparsed->parameters()[1].values[0]);
  const double expected_keep_prob = 0.4;
  const double expected_learning_rate = 1e-05;
  EXPECT_EQ(std::memcmp(&keep_prob, &expected_keep_prob, sizeof(double)), 0);
  EXPECT_EQ(std::memcmp(&learning_rate, &expected_learning_rate, sizeof(double)), 0);
}

TEST(GridParseTest, AcceptsExtremeIntegersWithoutChecks) {
  const absl::StatusOr<Grid> grid =
      Grid::Parse(R"({"x": [-9223372036854775808, 9223372036854775807, -0]})",
                  {.check_hyperparameters = false});
  ASSERT_TRUE(grid.ok()) << grid.status();
  const std::vector<Value> expected = {Value(std::numeric_limits<int64_t>::min()),
                                       Value(std::numeric_limits<int64_t>::max()),
                                       Value(int64_t{0})};
  EXPECT_EQ(grid->parameters()[0].values, expected);
}

TEST(GridParseTest, CountsCombinations) {
  const absl::StatusOr<Grid> grid = Grid::Parse(
      R"({"batch_size": [32, 64, 128], "keep_prob": [0.5, 1], "augmentation": ["none"]})");
  ASSERT_TRUE(grid.ok()) << grid.status();
  EXPECT_EQ(grid->CombinationCountDecimal(), "6");
  EXPECT_EQ(grid->CombinationCountCapped(100), 6);
  EXPECT_EQ(grid->CombinationCountCapped(4), 4);
}

TEST(GridParseTest, DefaultGridHasOneEmptyCombination) {
  const Grid grid;
  EXPECT_EQ(grid.CombinationCountDecimal(), "1");
  EXPECT_TRUE(grid.CombinationAt(0).empty());
}

TEST(GridFromParametersTest, RejectsStructuralViolations) {
  const GridOptions unchecked = {.check_hyperparameters = false};
  struct Case {
    const char* label;
    std::vector<GridParameter> parameters;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"no parameters",
       {},
       "grid: no parameters; add at least one hyperparameter with a list of values"},
      {"empty name",
       {{"", {Value(int64_t{1})}}},
       R"(grid parameter "": the name is empty; give a name)"},
      {"name not UTF-8",
       {{"a\xff", {Value(int64_t{1})}}},
       "grid parameter \"a\xef\xbf\xbd\": the name is not valid UTF-8; use a UTF-8 name"},
      {"string not UTF-8",
       {{"a", {Value(std::string("\xc3"))}}},
       "grid parameter \"a\": element 0 (\"\xef\xbf\xbd\") is not valid UTF-8; use UTF-8 text"},
      {"NaN",
       {{"a", {Value(0.5), Value(std::numeric_limits<double>::quiet_NaN())}}},
       R"(grid parameter "a": element 1 (nan) is not finite; use a finite number)"},
      {"duplicate name",
       {{"a", {Value(int64_t{1})}}, {"b", {Value(int64_t{1})}}, {"a", {Value(int64_t{2})}}},
       R"(grid parameter "a" appears twice (entries 0 and 2); give one list for it)"},
      {"mixed kinds",
       {{"a", {Value(true), Value(std::string("x"))}}},
       R"(grid parameter "a": element 1 ("x") is a string, but element 0 (true) is a boolean; use values of one kind in a list)"},
      {"negative zero duplicates zero",
       {{"a", {Value(0.0), Value(-0.0)}}},
       R"(grid parameter "a": element 1 (-0.0) duplicates element 0 (0.0); list each value once)"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.label);
    const absl::StatusOr<Grid> grid = Grid::FromParameters(c.parameters, unchecked);
    ASSERT_FALSE(grid.ok());
    EXPECT_EQ(grid.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(grid.status().message(), c.message);
  }
}

TEST(GridFromParametersTest, ChecksHyperparametersByDefault) {
  const absl::StatusOr<Grid> grid =
      Grid::FromParameters({{"batch_size", {Value(int64_t{32}), Value(int64_t{0})}}});
  ASSERT_FALSE(grid.ok());
  EXPECT_EQ(
      grid.status().message(),
      R"(grid parameter "batch_size": element 1 (0) is not a positive integer; use an integer from 1 to 65536)");
}

TEST(GridFromParametersTest, MatchesParse) {
  const absl::StatusOr<Grid> built = Grid::FromParameters(
      {{"learning_rate", {Value(int64_t{1}), Value(0.01)}}, {"batch_size", {Value(int64_t{8})}}});
  const absl::StatusOr<Grid> parsed =
      Grid::Parse(R"({"learning_rate": [1, 0.01], "batch_size": [8]})");
  ASSERT_TRUE(built.ok()) << built.status();
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*built, *parsed);
}

}  // namespace
}  // namespace sweep
