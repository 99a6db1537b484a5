// Stopping rules on hand-made validation histories, with exact expected decisions.
#include "server/stopping.h"

#include <gtest/gtest.h>

namespace sweep::server {
namespace {

v1::StoppingRule Median(int grace_epochs, int min_trials) {
  v1::StoppingRule rule;
  rule.mutable_median()->set_grace_epochs(grace_epochs);
  rule.mutable_median()->set_min_trials(min_trials);
  return rule;
}

v1::StoppingRule Asha(int min_epochs, int factor, int max_epochs) {
  v1::StoppingRule rule;
  rule.mutable_asha()->set_min_epochs(min_epochs);
  rule.mutable_asha()->set_reduction_factor(factor);
  rule.mutable_asha()->set_max_epochs(max_epochs);
  return rule;
}

TEST(MedianRule, StopsTrialBelowMedianOfRunningAverages) {
  // Running averages at epoch 2: trial 2 (0.5 + 0.7) / 2 = 0.6, trial 3 0.65, trial 4 0.55;
  // their median is 0.6 and trial 1's best so far is 0.58.
  const ValidationHistory history = {{1, {{1, 0.40}, {2, 0.58}}},
                                     {2, {{1, 0.50}, {2, 0.70}}},
                                     {3, {{1, 0.60}, {2, 0.70}}},
                                     {4, {{1, 0.50}, {2, 0.60}}}};
  const StopDecision decision = DecideStop(Median(1, 3), 1, 2, history);
  EXPECT_TRUE(decision.stop);
  EXPECT_EQ(decision.reason,
            "median stopping rule at epoch 2: best val_accuracy 0.58 is below the median running "
            "average 0.6 of 3 other trials");
}

TEST(MedianRule, ReasonNamesOneOtherTrial) {
  const ValidationHistory history = {{1, {{1, 0.40}, {2, 0.50}}}, {2, {{1, 0.50}, {2, 0.70}}}};
  const StopDecision decision = DecideStop(Median(1, 1), 1, 2, history);
  EXPECT_TRUE(decision.stop);
  EXPECT_EQ(decision.reason,
            "median stopping rule at epoch 2: best val_accuracy 0.5 is below the median running "
            "average 0.6 of 1 other trial");
}

TEST(MedianRule, KeepsTrialAtOrAboveMedian) {
  const ValidationHistory history = {{1, {{1, 0.40}, {2, 0.60}}},
                                     {2, {{1, 0.50}, {2, 0.70}}},
                                     {3, {{1, 0.60}, {2, 0.70}}},
                                     {4, {{1, 0.50}, {2, 0.60}}}};
  EXPECT_FALSE(DecideStop(Median(1, 3), 1, 2, history).stop);
}

TEST(MedianRule, UsesBestSoFarNotLatest) {
  // Trial 1 dropped to 0.3 at epoch 3 but reached 0.9 at epoch 1.
  const ValidationHistory history = {{1, {{1, 0.90}, {2, 0.50}, {3, 0.30}}},
                                     {2, {{1, 0.70}, {2, 0.70}, {3, 0.70}}},
                                     {3, {{1, 0.70}, {2, 0.70}, {3, 0.70}}}};
  EXPECT_FALSE(DecideStop(Median(1, 2), 1, 3, history).stop);
}

TEST(MedianRule, WaitsForGracePeriod) {
  const ValidationHistory history = {
      {1, {{1, 0.1}}}, {2, {{1, 0.9}}}, {3, {{1, 0.9}}}, {4, {{1, 0.9}}}};
  EXPECT_FALSE(DecideStop(Median(1, 3), 1, 1, history).stop);
  EXPECT_TRUE(DecideStop(Median(0, 3), 1, 1, history).stop);
}

TEST(MedianRule, NeedsMinTrialsAtSameEpoch) {
  // Only trial 2 reached epoch 2; trial 3 stopped at epoch 1.
  const ValidationHistory history = {
      {1, {{1, 0.1}, {2, 0.1}}}, {2, {{1, 0.9}, {2, 0.9}}}, {3, {{1, 0.9}}}};
  EXPECT_FALSE(DecideStop(Median(1, 2), 1, 2, history).stop);
  EXPECT_TRUE(DecideStop(Median(1, 1), 1, 2, history).stop);
}

TEST(AshaRule, KeepsTopFractionAtRung) {
  // Rungs at epochs 1, 3, 9 with factor 3. Six trials reached epoch 3: keep the top 2.
  ValidationHistory history;
  const double values[] = {0.80, 0.75, 0.70, 0.60, 0.50, 0.40};
  for (int trial = 1; trial <= 6; ++trial) history[trial] = {{1, 0.3}, {3, values[trial - 1]}};
  const v1::StoppingRule rule = Asha(1, 3, 27);
  EXPECT_FALSE(DecideStop(rule, 1, 3, history).stop);
  EXPECT_FALSE(DecideStop(rule, 2, 3, history).stop);
  const StopDecision third = DecideStop(rule, 3, 3, history);
  EXPECT_TRUE(third.stop);
  EXPECT_EQ(third.reason,
            "ASHA rung 1 at epoch 3: val_accuracy 0.7 is not in the top 2 of 6 trials");
  EXPECT_TRUE(DecideStop(rule, 6, 3, history).stop);
}

TEST(AshaRule, DecidesOnlyAtRungs) {
  ValidationHistory history;
  for (int trial = 1; trial <= 6; ++trial) history[trial] = {{2, 0.1 * trial}};
  EXPECT_FALSE(DecideStop(Asha(1, 3, 27), 1, 2, history).stop);
  EXPECT_TRUE(DecideStop(Asha(2, 3, 27), 1, 2, history).stop);
}

TEST(AshaRule, ContinuesWithTooFewResults) {
  const ValidationHistory history = {{1, {{1, 0.1}}}, {2, {{1, 0.9}}}};
  EXPECT_FALSE(DecideStop(Asha(1, 3, 9), 1, 1, history).stop);
}

TEST(AshaRule, NoRungAtOrPastMaxEpochs) {
  ValidationHistory history;
  for (int trial = 1; trial <= 6; ++trial) history[trial] = {{3, 0.1 * trial}};
  EXPECT_TRUE(DecideStop(Asha(1, 3, 9), 1, 3, history).stop);
  EXPECT_FALSE(DecideStop(Asha(1, 3, 3), 1, 3, history).stop);
}

TEST(StoppingRule, NormalizeFillsDefaultsAndRejectsBadValues) {
  v1::StoppingRule median;
  median.mutable_median();
  ASSERT_TRUE(NormalizeStoppingRule(median).ok());
  EXPECT_EQ(median.median().grace_epochs(), 1);
  EXPECT_EQ(median.median().min_trials(), 3);

  v1::StoppingRule asha = Asha(2, 1, 0);
  const absl::Status status = NormalizeStoppingRule(asha);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(), "ASHA rule: reduction_factor 1 is below 2; pass 2 or more");

  v1::StoppingRule short_asha = Asha(3, 2, 3);
  EXPECT_EQ(NormalizeStoppingRule(short_asha).message(),
            "ASHA rule: max_epochs 3 must exceed min_epochs 3, or be 0");
}

}  // namespace
}  // namespace sweep::server
