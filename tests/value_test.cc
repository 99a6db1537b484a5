#include "common/value.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace sweep {
namespace {

TEST(FormatDoubleTest, ShortestRoundTripForms) {
  struct Case {
    double value;
    const char* expected;
  };
  const Case cases[] = {
      {0.4, "0.4"},
      {1e-05, "1e-05"},
      {0.1 + 0.2, "0.30000000000000004"},
      {1.0, "1"},
      {-2.5, "-2.5"},
      {1e21, "1e+21"},
      {123456789.0, "123456789"},
      {-0.0, "-0"},
      {std::numeric_limits<double>::max(), "1.7976931348623157e+308"},
      {std::numeric_limits<double>::denorm_min(), "5e-324"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.expected);
    EXPECT_EQ(FormatDouble(c.value), c.expected);
  }
}

TEST(FormatDoubleTest, NonFiniteValues) {
  EXPECT_EQ(FormatDouble(std::numeric_limits<double>::quiet_NaN()), "nan");
  EXPECT_EQ(FormatDouble(std::numeric_limits<double>::infinity()), "inf");
  EXPECT_EQ(FormatDouble(-std::numeric_limits<double>::infinity()), "-inf");
}

TEST(FormatDoubleTest, ParsesBackToSameBits) {
  const double values[] = {0.4,
                           1e-05,
                           3e-4,
                           0.1 + 0.2,
                           1.0 / 3.0,
                           6.02214076e23,
                           2.2250738585072014e-308,
                           std::nextafter(1.0, 2.0)};
  for (double value : values) {
    const std::string text = FormatDouble(value);
    SCOPED_TRACE(text);
    const double parsed = std::strtod(text.c_str(), nullptr);
    EXPECT_EQ(std::memcmp(&parsed, &value, sizeof(double)), 0);
  }
}

TEST(FormatValueTest, ValuesForPeople) {
  EXPECT_EQ(FormatValue(Value(int64_t{-7})), "-7");
  EXPECT_EQ(FormatValue(Value(0.5)), "0.5");
  EXPECT_EQ(FormatValue(Value(std::string("flip"))), "flip");
  EXPECT_EQ(FormatValue(Value(true)), "true");
}

TEST(FormatValueAsJsonTest, DoublesNeverReadAsIntegers) {
  EXPECT_EQ(FormatValueAsJson(Value(32.0)), "32.0");
  EXPECT_EQ(FormatValueAsJson(Value(int64_t{32})), "32");
  EXPECT_EQ(FormatValueAsJson(Value(1e-05)), "1e-05");
  EXPECT_EQ(FormatValueAsJson(Value(std::string("a\"b"))), "\"a\\\"b\"");
  EXPECT_EQ(FormatValueAsJson(Value(false)), "false");
  EXPECT_EQ(FormatValueAsJson(Value(std::numeric_limits<double>::infinity())), "inf");
}

TEST(QuoteJsonStringTest, ReplacesInvalidUtf8) {
  EXPECT_EQ(QuoteJsonString("batch_size"), "\"batch_size\"");
  EXPECT_EQ(QuoteJsonString("a\nb"), "\"a\\nb\"");
  EXPECT_EQ(QuoteJsonString("\xff"), "\"\xef\xbf\xbd\"");
}

TEST(CanonicalJsonTest, SortsKeysAndKeepsExactNumbers) {
  const Assignment assignment = {{"learning_rate", Value(1e-05)},
                                 {"augmentation", Value(std::string("flip"))},
                                 {"keep_prob", Value(0.4)},
                                 {"batch_size", Value(int64_t{64})}};
  EXPECT_EQ(CanonicalJson(assignment),
            R"({"augmentation":"flip","batch_size":64,"keep_prob":0.4,"learning_rate":1e-05})");
}

}  // namespace
}  // namespace sweep
