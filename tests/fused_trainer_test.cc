#include "worker/fused_trainer.h"

#include <c10/util/string_utils.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/hyperparameters.h"
#include "tests/support/trainer.h"
#include "worker/idx_reader.h"
#include "worker/lenet.h"
#include "worker/trainer.h"

namespace sweep::worker {
namespace {

using sweep::testing::DeterministicFinalMetrics;
using sweep::testing::FinalMetrics;
using sweep::testing::MakeFused;
using sweep::testing::Metric;
using sweep::testing::RecordingObserver;
using sweep::testing::SmallHyperparameters;
using ::testing::HasSubstr;

// Relative tolerance between a fused trial's metrics and its unfused run's. The grouped
// convolution sums in another order than the unfused one, and Adam carries the rounding
// differences from step to step. On one thread of an AMD EPYC with OpenBLAS the largest
// difference after 32 steps was below 1e-6.
constexpr double kRelativeTolerance = 1e-4;

// 1,000 training images (16 steps per epoch), 500 validation and 500 test images.
TorchTrainerOptions SmallOptions() {
  return sweep::testing::SmallTrainerOptions(/*max_train_images=*/1500, /*max_test_images=*/500);
}

// Three trials that differ in every hyperparameter a group may vary.
std::vector<TrialSpec> ThreeTrials() {
  std::vector<TrialSpec> trials;
  const std::vector<std::tuple<double, double, Augmentation>> variants = {
      {2e-3, 0.5, Augmentation::kNone},
      {1e-3, 0.7, Augmentation::kFlipAndCrop},
      {5e-3, 1.0, Augmentation::kFlip}};
  for (size_t i = 0; i < variants.size(); ++i) {
    TrialSpec trial{.trial_id = static_cast<int64_t>(10 + i),
                    .attempt = 1,
                    .hyperparameters = SmallHyperparameters(/*num_epochs=*/2),
                    .seed = 100 + i};
    std::tie(trial.hyperparameters.learning_rate, trial.hyperparameters.keep_prob,
             trial.hyperparameters.augmentation) = variants[i];
    trials.push_back(trial);
  }
  return trials;
}

// What one trial reported: its result and its observer's metrics.
struct TrialRecord {
  absl::StatusOr<TrainingResult> result = absl::UnknownError("not trained");
  std::vector<Metric> metrics;
  int64_t polls = 0;
};

// Trains `trials` as one fused group. Trial i's observer requests a stop at poll
// `stop_at_poll[i]` when that list has an entry for it.
std::vector<TrialRecord> TrainFused(FusedTrainer& trainer, const std::vector<TrialSpec>& trials,
                                    const std::vector<int64_t>& stop_at_poll = {}) {
  std::vector<std::unique_ptr<RecordingObserver>> observers;
  std::vector<TrainingObserver*> pointers;
  for (size_t i = 0; i < trials.size(); ++i) {
    observers.push_back(
        std::make_unique<RecordingObserver>(i < stop_at_poll.size() ? stop_at_poll[i] : 0));
    pointers.push_back(observers.back().get());
  }
  std::vector<absl::StatusOr<TrainingResult>> results = trainer.TrainGroup(trials, pointers);
  EXPECT_EQ(results.size(), trials.size());
  std::vector<TrialRecord> records(trials.size());
  for (size_t i = 0; i < trials.size() && i < results.size(); ++i) {
    records[i] = TrialRecord{.result = std::move(results[i]),
                             .metrics = observers[i]->DeterministicMetrics(),
                             .polls = observers[i]->polls};
  }
  return records;
}

TrialRecord TrainUnfused(const TrialSpec& trial) {
  std::unique_ptr<Trainer> trainer = sweep::testing::MakeTrainer(SmallOptions());
  if (trainer == nullptr) return {};
  RecordingObserver observer;
  absl::StatusOr<TrainingResult> result = trainer->Train(trial, observer);
  return TrialRecord{.result = std::move(result), .metrics = observer.DeterministicMetrics()};
}

// True when `a` and `b` agree within kRelativeTolerance of the larger magnitude.
bool Near(double a, double b) {
  return std::abs(a - b) <= kRelativeTolerance * std::max({std::abs(a), std::abs(b), 1e-12});
}

void ExpectMetricsNear(const std::vector<Metric>& actual, const std::vector<Metric>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "expected metric " << expected[i]);
    EXPECT_EQ(actual[i].epoch, expected[i].epoch);
    EXPECT_EQ(actual[i].step, expected[i].step);
    EXPECT_EQ(actual[i].name, expected[i].name);
    EXPECT_TRUE(Near(actual[i].value, expected[i].value)) << "actual value " << actual[i].value;
  }
}

void ExpectFinalMetricsNear(const TrainingResult& actual, const TrainingResult& expected) {
  const std::map<std::string, double> actual_final = DeterministicFinalMetrics(actual);
  const std::map<std::string, double> expected_final = DeterministicFinalMetrics(expected);
  ASSERT_EQ(actual_final.size(), expected_final.size());
  for (const auto& [name, value] : expected_final) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(actual_final.contains(name));
    EXPECT_TRUE(Near(actual_final.at(name), value))
        << "actual " << actual_final.at(name) << ", expected " << value;
  }
}

void ExpectSameMetricsWithinTolerance(const TrialRecord& fused, const TrialRecord& unfused) {
  ASSERT_TRUE(fused.result.ok()) << fused.result.status();
  ASSERT_TRUE(unfused.result.ok()) << unfused.result.status();
  EXPECT_EQ(fused.result->outcome, unfused.result->outcome);
  ExpectMetricsNear(fused.metrics, unfused.metrics);
  ExpectFinalMetricsNear(*fused.result, *unfused.result);
}

TEST(CanFuseTest, SharedArchitectureAndBatchSize) {
  const Hyperparameters base = SmallHyperparameters(/*num_epochs=*/2);
  Hyperparameters other = base;
  other.learning_rate = 0.1;
  other.keep_prob = 0.9;
  other.augmentation = Augmentation::kCrop;
  other.num_epochs = 7;

  EXPECT_TRUE(CanFuse(base, other));
}

TEST(CanFuseTest, DifferentShapesDoNotFuse) {
  const Hyperparameters base = SmallHyperparameters(/*num_epochs=*/2);
  const std::vector<std::pair<std::string, int64_t Hyperparameters::*>> fields = {
      {"conv1_depth", &Hyperparameters::conv1_depth},
      {"conv2_depth", &Hyperparameters::conv2_depth},
      {"dense_layer_units", &Hyperparameters::dense_layer_units},
      {"batch_size", &Hyperparameters::batch_size}};
  for (const auto& [name, field] : fields) {
    SCOPED_TRACE(name);
    Hyperparameters other = base;
    other.*field += 1;

    EXPECT_FALSE(CanFuse(base, other));
  }
}

TEST(FusedTrainerTest, MatchesUnfusedTrainer) {
  std::unique_ptr<FusedTrainer> trainer = MakeFused(SmallOptions());
  ASSERT_NE(trainer, nullptr);
  const std::vector<TrialSpec> trials = ThreeTrials();

  const std::vector<TrialRecord> fused = TrainFused(*trainer, trials);

  for (size_t i = 0; i < trials.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "trial " << trials[i].trial_id);
    const TrialRecord unfused = TrainUnfused(trials[i]);
    ExpectSameMetricsWithinTolerance(fused[i], unfused);
  }
}

TEST(FusedTrainerTest, ReportsMetricsAtUnfusedSteps) {
  std::unique_ptr<FusedTrainer> trainer = MakeFused(SmallOptions());
  ASSERT_NE(trainer, nullptr);
  std::vector<TrialSpec> trials = ThreeTrials();
  trials.resize(1);

  const std::vector<TrialRecord> fused = TrainFused(*trainer, trials);

  ASSERT_TRUE(fused[0].result.ok()) << fused[0].result.status();
  EXPECT_EQ(fused[0].result->outcome, TrainingOutcome::kCompleted);
  std::vector<int64_t> step_loss_steps;
  std::vector<std::tuple<int32_t, int64_t, std::string>> epoch_metrics;
  for (const Metric& metric : fused[0].metrics) {
    if (metric.name == "step_train_loss") {
      step_loss_steps.push_back(metric.step);
    } else {
      epoch_metrics.emplace_back(metric.epoch, metric.step, metric.name);
    }
  }
  EXPECT_EQ(step_loss_steps, (std::vector<int64_t>{5, 10, 15, 20, 25, 30}));
  EXPECT_EQ(epoch_metrics,
            (std::vector<std::tuple<int32_t, int64_t, std::string>>{{1, 16, "train_loss"},
                                                                    {1, 16, "train_accuracy"},
                                                                    {1, 16, "val_loss"},
                                                                    {1, 16, "val_accuracy"},
                                                                    {2, 32, "train_loss"},
                                                                    {2, 32, "train_accuracy"},
                                                                    {2, 32, "val_loss"},
                                                                    {2, 32, "val_accuracy"}}));
  EXPECT_EQ(fused[0].polls, 32);
}

TEST(FusedTrainerTest, StoppedTrialLeavesOthersUnchanged) {
  std::unique_ptr<FusedTrainer> trainer = MakeFused(SmallOptions());
  ASSERT_NE(trainer, nullptr);
  const std::vector<TrialSpec> trials = ThreeTrials();

  const std::vector<TrialRecord> baseline = TrainFused(*trainer, trials);
  const std::vector<TrialRecord> stopped = TrainFused(*trainer, trials, {0, 10, 0});

  ASSERT_TRUE(stopped[1].result.ok()) << stopped[1].result.status();
  EXPECT_EQ(stopped[1].result->outcome, TrainingOutcome::kStopped);
  EXPECT_EQ(stopped[1].result->message, "stopped at epoch 1 step 10");
  EXPECT_EQ(stopped[1].polls, 10);
  EXPECT_FALSE(FinalMetrics(*stopped[1].result).contains("test_accuracy"));
  for (size_t i : {0, 2}) {
    SCOPED_TRACE(::testing::Message() << "trial " << trials[i].trial_id);
    ASSERT_TRUE(stopped[i].result.ok()) << stopped[i].result.status();
    ASSERT_TRUE(baseline[i].result.ok()) << baseline[i].result.status();
    EXPECT_EQ(stopped[i].result->outcome, TrainingOutcome::kCompleted);
    EXPECT_EQ(stopped[i].metrics, baseline[i].metrics);
    EXPECT_EQ(DeterministicFinalMetrics(*stopped[i].result),
              DeterministicFinalMetrics(*baseline[i].result));
  }
}

TEST(FusedTrainerTest, DivergingTrialEndsAlone) {
  std::unique_ptr<FusedTrainer> trainer = MakeFused(SmallOptions());
  ASSERT_NE(trainer, nullptr);
  std::vector<TrialSpec> trials = ThreeTrials();
  const std::vector<TrialRecord> baseline = TrainFused(*trainer, trials);
  // Updates of about 1e12 per weight overflow the float32 activations.
  trials[1].hyperparameters.learning_rate = 1e12;

  const std::vector<TrialRecord> diverged = TrainFused(*trainer, trials);

  ASSERT_TRUE(diverged[1].result.ok()) << diverged[1].result.status();
  EXPECT_EQ(diverged[1].result->outcome, TrainingOutcome::kDiverged);
  EXPECT_EQ(diverged[1].result->message, "diverged: train loss is nan at epoch 1 step 5");
  EXPECT_FALSE(FinalMetrics(*diverged[1].result).contains("test_accuracy"));
  for (size_t i : {0, 2}) {
    SCOPED_TRACE(::testing::Message() << "trial " << trials[i].trial_id);
    ASSERT_TRUE(diverged[i].result.ok()) << diverged[i].result.status();
    ASSERT_TRUE(baseline[i].result.ok()) << baseline[i].result.status();
    EXPECT_EQ(diverged[i].result->outcome, TrainingOutcome::kCompleted);
    EXPECT_EQ(diverged[i].metrics, baseline[i].metrics);
    EXPECT_EQ(DeterministicFinalMetrics(*diverged[i].result),
              DeterministicFinalMetrics(*baseline[i].result));
  }
}

TEST(FusedTrainerTest, TrialsEndAfterTheirOwnEpochs) {
  std::unique_ptr<FusedTrainer> trainer = MakeFused(SmallOptions());
  ASSERT_NE(trainer, nullptr);
  std::vector<TrialSpec> trials = ThreeTrials();
  for (TrialSpec& trial : trials) trial.hyperparameters.num_epochs = 3;
  const std::vector<TrialRecord> baseline = TrainFused(*trainer, trials);
  trials[0].hyperparameters.num_epochs = 1;
  trials[1].hyperparameters.num_epochs = 2;

  const std::vector<TrialRecord> fused = TrainFused(*trainer, trials);

  for (size_t i = 0; i < trials.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "trial " << trials[i].trial_id);
    const int32_t epochs = static_cast<int32_t>(trials[i].hyperparameters.num_epochs);
    ASSERT_TRUE(fused[i].result.ok()) << fused[i].result.status();
    ASSERT_TRUE(baseline[i].result.ok()) << baseline[i].result.status();
    EXPECT_EQ(fused[i].result->outcome, TrainingOutcome::kCompleted);
    EXPECT_TRUE(FinalMetrics(*fused[i].result).contains("test_accuracy"));
    EXPECT_EQ(fused[i].polls, 16 * epochs);
    // Up to its last epoch, each trial trains as in the group where all train 3 epochs. The
    // values may differ in rounding: once trial 12 trains alone, its convolutions are no
    // longer grouped and sum in another order.
    std::vector<Metric> baseline_prefix;
    for (const Metric& metric : baseline[i].metrics) {
      if (metric.epoch <= epochs) baseline_prefix.push_back(metric);
    }
    ExpectMetricsNear(fused[i].metrics, baseline_prefix);
  }
  ExpectFinalMetricsNear(*fused[2].result, *baseline[2].result);
}

TEST(FusedTrainerTest, MismatchedArchitectureIsRejected) {
  std::unique_ptr<FusedTrainer> trainer = MakeFused(SmallOptions());
  ASSERT_NE(trainer, nullptr);
  std::vector<TrialSpec> trials = ThreeTrials();
  trials[2].hyperparameters.dense_layer_units = 32;

  const std::vector<TrialRecord> fused = TrainFused(*trainer, trials);

  for (const TrialRecord& record : fused) {
    EXPECT_EQ(record.result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(record.result.status().message(), HasSubstr("trial 12 differs from trial 10"));
    EXPECT_EQ(record.polls, 0);
  }
}

TEST(FusedTrainerTest, InvalidTrialIsRejectedAlone) {
  std::unique_ptr<FusedTrainer> trainer = MakeFused(SmallOptions());
  ASSERT_NE(trainer, nullptr);
  std::vector<TrialSpec> trials = ThreeTrials();
  trials[1].hyperparameters.keep_prob = 0;

  const std::vector<TrialRecord> fused = TrainFused(*trainer, trials);

  EXPECT_EQ(fused[1].result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(fused[1].result.status().message(), HasSubstr("keep_prob"));
  for (size_t i : {0, 2}) {
    ASSERT_TRUE(fused[i].result.ok()) << fused[i].result.status();
    EXPECT_EQ(fused[i].result->outcome, TrainingOutcome::kCompleted);
  }
}

TEST(FusedTrainerTest, ObserverCountMismatchIsRejected) {
  std::unique_ptr<FusedTrainer> trainer = MakeFused(SmallOptions());
  ASSERT_NE(trainer, nullptr);
  RecordingObserver observer;

  const std::vector<absl::StatusOr<TrainingResult>> results =
      trainer->TrainGroup(ThreeTrials(), {&observer});

  ASSERT_EQ(results.size(), 3u);
  for (const absl::StatusOr<TrainingResult>& result : results) {
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(result.status().message(), HasSubstr("3 trials but 1 observers"));
  }
}

TEST(FusedTrainerTest, EmptyGroupReturnsNoResults) {
  std::unique_ptr<FusedTrainer> trainer = MakeFused(SmallOptions());
  ASSERT_NE(trainer, nullptr);

  EXPECT_TRUE(trainer->TrainGroup({}, {}).empty());
}

TEST(FusedTrainerTest, BadDataDirFailsEveryTrial) {
  TorchTrainerOptions options = SmallOptions();
  options.data_dir = std::filesystem::path(::testing::TempDir()) / "fused-no-data";
  std::unique_ptr<FusedTrainer> trainer = MakeFused(options);
  ASSERT_NE(trainer, nullptr);

  const std::vector<TrialRecord> fused = TrainFused(*trainer, ThreeTrials());

  for (const TrialRecord& record : fused) {
    EXPECT_EQ(record.result.status().code(), absl::StatusCode::kNotFound);
    EXPECT_THAT(record.result.status().message(), HasSubstr("fused-no-data"));
  }
}

TEST(FusedTrainerTest, UnknownDeviceIsRejected) {
  TorchTrainerOptions options = SmallOptions();
  options.device = "tpu";

  absl::StatusOr<std::unique_ptr<FusedTrainer>> trainer = MakeFusedTrainer(options);

  EXPECT_EQ(trainer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(trainer.status().message(), HasSubstr("device \"tpu\""));
}

class FusedTrainerFilesTest : public sweep::testing::TempDirTest {};

TEST_F(FusedTrainerFilesTest, CheckpointsLoadIntoUnfusedModel) {
  TorchTrainerOptions options = SmallOptions();
  options.artifacts_dir = dir_;
  std::unique_ptr<FusedTrainer> trainer = MakeFused(options);
  ASSERT_NE(trainer, nullptr);
  const std::vector<TrialSpec> trials = ThreeTrials();

  const std::vector<TrialRecord> fused = TrainFused(*trainer, trials);

  const TensorDataset test = ToTensorDataset(sweep::testing::RealData().test, 0, 500, torch::kCPU);
  for (size_t i = 0; i < trials.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "trial " << trials[i].trial_id);
    ASSERT_TRUE(fused[i].result.ok()) << fused[i].result.status();
    EXPECT_EQ(fused[i].result->checkpoint_path,
              (dir_ / ("trial-" + std::to_string(trials[i].trial_id) + "-attempt-1") / "best.pt")
                  .string());
    LeNet model(trials[i].hyperparameters);
    torch::optim::Adam optimizer(model->parameters());
    ASSERT_NO_FATAL_FAILURE(
        sweep::testing::LoadCheckpoint(fused[i].result->checkpoint_path, model, optimizer));
    EXPECT_EQ(optimizer.state().size(), model->parameters().size());
    const std::map<std::string, double> final_metrics = FinalMetrics(*fused[i].result);
    const auto& conv1_bias_state = static_cast<const torch::optim::AdamParamState&>(
        *optimizer.state().at(c10::guts::to_string(model->parameters()[1].unsafeGetTensorImpl())));
    EXPECT_EQ(conv1_bias_state.step(), 16 * final_metrics.at("best_epoch"));
    // The checkpoint holds the model the trainer tested.
    const Evaluation evaluation = Evaluate(model, test, 128);
    EXPECT_EQ(evaluation.accuracy, final_metrics.at("test_accuracy"));
    EXPECT_NEAR(evaluation.loss, final_metrics.at("test_loss"), 1e-5);
  }
}

}  // namespace
}  // namespace sweep::worker
