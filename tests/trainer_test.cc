#include "worker/trainer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/hyperparameters.h"
#include "tests/support/trainer.h"
#include "worker/idx_reader.h"
#include "worker/lenet.h"

namespace sweep::worker {
namespace {

using sweep::testing::FinalMetrics;
using sweep::testing::MakeTrainer;
using sweep::testing::Metric;
using sweep::testing::RealData;
using sweep::testing::RecordingObserver;
using sweep::testing::SmallHyperparameters;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Key;

// 3,000 training and 500 validation images, 1,000 test images.
TorchTrainerOptions SmallOptions() {
  return sweep::testing::SmallTrainerOptions(/*max_train_images=*/3500, /*max_test_images=*/1000);
}

TrialSpec SmallTrial(uint64_t seed) {
  return TrialSpec{.trial_id = 3,
                   .attempt = 2,
                   .hyperparameters = SmallHyperparameters(/*num_epochs=*/1),
                   .seed = seed};
}

TEST(LeNetTest, EvaluateTwiceGivesSameResult) {
  torch::manual_seed(1);
  LeNet model(SmallHyperparameters(/*num_epochs=*/1));
  const TensorDataset data = ToTensorDataset(RealData().test, 0, 700, torch::kCPU);
  model->train();

  const Evaluation first = Evaluate(model, data, 128);
  const Evaluation second = Evaluate(model, data, 128);

  EXPECT_EQ(first.loss, second.loss);
  EXPECT_EQ(first.accuracy, second.accuracy);
  EXPECT_TRUE(model->is_training());
}

TEST(LeNetTest, EvaluateKeepsEvalMode) {
  torch::manual_seed(1);
  LeNet model(SmallHyperparameters(/*num_epochs=*/1));
  const TensorDataset data = ToTensorDataset(RealData().test, 0, 100, torch::kCPU);
  model->eval();

  Evaluate(model, data, 128);

  EXPECT_FALSE(model->is_training());
}

TEST(LeNetTest, EvaluateBatchSizeDoesNotChangeAccuracy) {
  torch::manual_seed(1);
  LeNet model(SmallHyperparameters(/*num_epochs=*/1));
  const TensorDataset data = ToTensorDataset(RealData().test, 0, 700, torch::kCPU);

  const Evaluation small_batches = Evaluate(model, data, 100);
  const Evaluation one_batch = Evaluate(model, data, 700);

  EXPECT_EQ(small_batches.accuracy, one_batch.accuracy);
  EXPECT_NEAR(small_batches.loss, one_batch.loss, 1e-5);
}

TEST(LeNetTest, OutputHasTenLogitsPerImage) {
  LeNet model(SmallHyperparameters(/*num_epochs=*/1));

  const torch::Tensor logits = model->forward(torch::rand({5, 1, 28, 28}));

  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{5, 10}));
}

TEST(LeNetTest, TensorDatasetScalesPixelsToUnitInterval) {
  const TensorDataset data = ToTensorDataset(RealData().train, 10, 20, torch::kCPU);

  EXPECT_EQ(data.images.sizes(), (std::vector<int64_t>{10, 1, 28, 28}));
  EXPECT_EQ(data.labels.scalar_type(), torch::kLong);
  EXPECT_EQ(data.labels[0].item<int64_t>(), RealData().train.labels[10]);
  EXPECT_FLOAT_EQ(data.images[0][0][5][7].item<float>(),
                  RealData().train.pixels[10 * 784 + 5 * 28 + 7] / 255.0f);
  EXPECT_LE(data.images.max().item<float>(), 1.0f);
}

TEST(ReluMaxPoolTest, MatchesLibTorchOperators) {
  // Output widths 14 and 7 run the 4-wide kernel, the second with an overlapping last
  // group, and width 3 runs the scalar one.
  for (const std::vector<int64_t>& shape :
       {std::vector<int64_t>{2, 3, 28, 28}, {2, 3, 14, 14}, {3, 4, 8, 6}}) {
    SCOPED_TRACE(shape[3]);
    torch::manual_seed(2);
    const torch::Tensor input = torch::randn(shape).requires_grad_();
    const torch::Tensor reference_input = input.detach().clone().requires_grad_();
    const torch::Tensor grad_output =
        torch::randn({shape[0], shape[1], shape[2] / 2, shape[3] / 2});

    const torch::Tensor output = ReluMaxPool2x2(input);
    const torch::Tensor reference = torch::relu(torch::max_pool2d(reference_input, 2));
    output.backward(grad_output);
    reference.backward(grad_output);

    EXPECT_TRUE(torch::equal(output, reference));
    EXPECT_TRUE(torch::equal(input.grad(), reference_input.grad()));
  }
}

TEST(ReluMaxPoolTest, TieSendsGradientToFirstMaximum) {
  for (int64_t width : {2, 10}) {
    SCOPED_TRACE(width);
    const torch::Tensor input = torch::ones({1, 1, 2, width}).requires_grad_();

    ReluMaxPool2x2(input).sum().backward();

    torch::Tensor expected = torch::zeros({1, 1, 2, width});
    expected.select(2, 0).slice(2, 0, width, 2).fill_(1.0f);
    EXPECT_TRUE(torch::equal(input.grad(), expected));
  }
}

TEST(ReluMaxPoolTest, NegativeWindowGetsNoGradient) {
  for (int64_t width : {2, 10}) {
    SCOPED_TRACE(width);
    const torch::Tensor input = (-torch::rand({1, 1, 2, width}) - 0.1).requires_grad_();

    const torch::Tensor output = ReluMaxPool2x2(input);
    output.sum().backward();

    EXPECT_TRUE(torch::equal(output, torch::zeros({1, 1, 1, width / 2})));
    EXPECT_TRUE(torch::equal(input.grad(), torch::zeros({1, 1, 2, width})));
  }
}

TEST(ReluMaxPoolTest, PropagatesNan) {
  for (int64_t width : {2, 10}) {
    SCOPED_TRACE(width);
    torch::Tensor input = -torch::ones({1, 1, 2, width});
    input[0][0][1][0] = std::nan("");
    input[0][0][0][width - 1] = std::nan("");

    const torch::Tensor output = ReluMaxPool2x2(input);

    EXPECT_TRUE(std::isnan(output[0][0][0][0].item<float>()));
    EXPECT_TRUE(std::isnan(output[0][0][0][width / 2 - 1].item<float>()));
    EXPECT_EQ(output.isnan().sum().item<int64_t>(), width == 2 ? 1 : 2);
  }
}

TEST(FusedAdamTest, MatchesLibTorchAdam) {
  torch::manual_seed(3);
  // 1,003 elements run the 4-wide kernel and the scalar one for the last 3.
  torch::Tensor fused_parameter = torch::randn({1003}).requires_grad_();
  torch::Tensor parameter = fused_parameter.detach().clone().requires_grad_();
  FusedAdam fused({fused_parameter}, torch::optim::AdamOptions(0.01));
  torch::optim::Adam reference({parameter}, torch::optim::AdamOptions(0.01));

  for (int step = 0; step < 5; ++step) {
    const torch::Tensor grad = torch::randn({1003});
    fused_parameter.mutable_grad() = grad.clone();
    parameter.mutable_grad() = grad.clone();
    fused.step();
    reference.step();
  }

  EXPECT_TRUE(torch::allclose(fused_parameter, parameter, /*rtol=*/1e-5, /*atol=*/1e-6));
}

TEST(FusedAdamTest, StateLoadsIntoLibTorchAdam) {
  torch::Tensor parameter = torch::ones({4}).requires_grad_();
  FusedAdam fused({parameter}, torch::optim::AdamOptions(0.1));
  parameter.mutable_grad() = torch::ones({4});
  fused.step();
  torch::serialize::OutputArchive output;
  fused.save(output);
  std::stringstream stream;
  output.save_to(stream);

  torch::optim::Adam reference({parameter}, torch::optim::AdamOptions(0.1));
  torch::serialize::InputArchive input;
  input.load_from(stream);
  reference.load(input);

  ASSERT_EQ(reference.state().size(), 1u);
  const auto& state =
      static_cast<const torch::optim::AdamParamState&>(*reference.state().begin()->second);
  EXPECT_EQ(state.step(), 1);
  EXPECT_TRUE(torch::allclose(state.exp_avg(), torch::full({4}, 0.1f)));
}

TEST(TorchTrainerTest, ReportsEpochAndStepMetrics) {
  std::unique_ptr<Trainer> trainer = MakeTrainer(SmallOptions());
  ASSERT_NE(trainer, nullptr);
  RecordingObserver observer;

  absl::StatusOr<TrainingResult> result = trainer->Train(SmallTrial(1), observer);

  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->outcome, TrainingOutcome::kCompleted);
  // 3,000 images in batches of 64 take 47 steps; step metrics come every 5 steps.
  std::vector<int64_t> step_loss_steps;
  std::map<std::string, Metric> epoch_metrics;
  for (const Metric& metric : observer.metrics) {
    if (metric.name == "step_train_loss") {
      step_loss_steps.push_back(metric.step);
    } else {
      epoch_metrics[metric.name] = metric;
    }
  }
  EXPECT_EQ(step_loss_steps, (std::vector<int64_t>{5, 10, 15, 20, 25, 30, 35, 40, 45}));
  for (const char* name : {"train_loss", "train_accuracy", "val_loss", "val_accuracy",
                           "epoch_seconds", "images_per_second"}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(epoch_metrics.contains(name));
    EXPECT_EQ(epoch_metrics[name].epoch, 1);
    EXPECT_EQ(epoch_metrics[name].step, 47);
    EXPECT_GT(epoch_metrics[name].value, 0);
  }
  const std::map<std::string, double> final_metrics = FinalMetrics(*result);
  for (const char* name : {"test_loss", "test_accuracy", "best_val_accuracy", "best_val_loss",
                           "best_epoch", "train_seconds"}) {
    EXPECT_THAT(final_metrics, Contains(Key(name)));
  }
  EXPECT_EQ(final_metrics.at("best_epoch"), 1);
  EXPECT_EQ(final_metrics.at("best_val_accuracy"), epoch_metrics["val_accuracy"].value);
  EXPECT_TRUE(result->checkpoint_path.empty());
}

TEST(TorchTrainerTest, ShortRunLearns) {
  std::unique_ptr<Trainer> trainer = MakeTrainer(SmallOptions());
  ASSERT_NE(trainer, nullptr);
  RecordingObserver observer;

  absl::StatusOr<TrainingResult> result = trainer->Train(SmallTrial(1), observer);

  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(FinalMetrics(*result).at("test_accuracy"), 0.6);
}

TEST(TorchTrainerTest, SameSeedReproducesMetrics) {
  TorchTrainerOptions options = SmallOptions();
  // Two threads check that parallel kernels reproduce too.
  options.threads = 2;
  std::unique_ptr<Trainer> trainer = MakeTrainer(options);
  ASSERT_NE(trainer, nullptr);
  TrialSpec trial = SmallTrial(7);
  trial.hyperparameters.num_epochs = 2;
  trial.hyperparameters.augmentation = Augmentation::kFlipAndCrop;
  RecordingObserver first_observer;
  RecordingObserver second_observer;
  RecordingObserver other_observer;

  absl::StatusOr<TrainingResult> first = trainer->Train(trial, first_observer);
  absl::StatusOr<TrainingResult> second = trainer->Train(trial, second_observer);
  trial.seed = 8;
  absl::StatusOr<TrainingResult> other = trainer->Train(trial, other_observer);

  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(first_observer.DeterministicMetrics(), second_observer.DeterministicMetrics());
  EXPECT_EQ(sweep::testing::DeterministicFinalMetrics(*first),
            sweep::testing::DeterministicFinalMetrics(*second));
  EXPECT_NE(first_observer.DeterministicMetrics(), other_observer.DeterministicMetrics());
}

TEST(TorchTrainerTest, StopRequestEndsAfterOneStep) {
  std::unique_ptr<Trainer> trainer = MakeTrainer(SmallOptions());
  ASSERT_NE(trainer, nullptr);
  RecordingObserver observer(/*stop_at_poll=*/1);

  absl::StatusOr<TrainingResult> result = trainer->Train(SmallTrial(1), observer);

  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->outcome, TrainingOutcome::kStopped);
  EXPECT_EQ(result->message, "stopped at epoch 1 step 1");
  EXPECT_EQ(observer.polls, 1);
  EXPECT_TRUE(observer.metrics.empty());
  EXPECT_FALSE(FinalMetrics(*result).contains("test_accuracy"));
}

TEST(TorchTrainerTest, StopRequestInSecondEpochKeepsBestEpoch) {
  std::unique_ptr<Trainer> trainer = MakeTrainer(SmallOptions());
  ASSERT_NE(trainer, nullptr);
  TrialSpec trial = SmallTrial(1);
  trial.hyperparameters.num_epochs = 3;
  RecordingObserver observer(/*stop_at_poll=*/50);

  absl::StatusOr<TrainingResult> result = trainer->Train(trial, observer);

  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->outcome, TrainingOutcome::kStopped);
  EXPECT_EQ(result->message, "stopped at epoch 2 step 50");
  EXPECT_EQ(observer.polls, 50);
  EXPECT_EQ(FinalMetrics(*result).at("best_epoch"), 1);
}

TEST(TorchTrainerTest, HugeLearningRateDiverges) {
  std::unique_ptr<Trainer> trainer = MakeTrainer(SmallOptions());
  ASSERT_NE(trainer, nullptr);
  TrialSpec trial = SmallTrial(1);
  // At 1e6 the ReLUs die and the loss stays finite near 1e29. Updates of about 1e12 per
  // weight overflow the float32 activations instead.
  trial.hyperparameters.learning_rate = 1e12;
  RecordingObserver observer;

  absl::StatusOr<TrainingResult> result = trainer->Train(trial, observer);

  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->outcome, TrainingOutcome::kDiverged);
  EXPECT_EQ(result->message, "diverged: train loss is nan at epoch 1 step 5");
  EXPECT_FALSE(FinalMetrics(*result).contains("test_accuracy"));
}

TEST(TorchTrainerTest, DivergenceIsCheckedWithStepMetricsOff) {
  TorchTrainerOptions options = SmallOptions();
  options.log_every_steps = 0;
  std::unique_ptr<Trainer> trainer = MakeTrainer(options);
  ASSERT_NE(trainer, nullptr);
  TrialSpec trial = SmallTrial(1);
  trial.hyperparameters.learning_rate = 1e12;
  RecordingObserver observer;

  absl::StatusOr<TrainingResult> result = trainer->Train(trial, observer);

  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->outcome, TrainingOutcome::kDiverged);
  EXPECT_THAT(result->message, HasSubstr("at epoch 1 step"));
  EXPECT_TRUE(observer.metrics.empty());
}

TEST(TorchTrainerTest, InvalidHyperparameterIsRejected) {
  std::unique_ptr<Trainer> trainer = MakeTrainer(SmallOptions());
  ASSERT_NE(trainer, nullptr);
  TrialSpec trial = SmallTrial(1);
  trial.hyperparameters.keep_prob = 0;
  RecordingObserver observer;

  absl::StatusOr<TrainingResult> result = trainer->Train(trial, observer);

  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("keep_prob"));
}

TEST(TorchTrainerTest, ValidationLargerThanTrainingSetIsRejected) {
  TorchTrainerOptions options = SmallOptions();
  options.validation_images = 3500;
  std::unique_ptr<Trainer> trainer = MakeTrainer(options);
  ASSERT_NE(trainer, nullptr);
  RecordingObserver observer;

  absl::StatusOr<TrainingResult> result = trainer->Train(SmallTrial(1), observer);

  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(result.status().message(), HasSubstr("validation_images 3500"));
}

TEST(TorchTrainerTest, UnknownDeviceIsRejected) {
  TorchTrainerOptions options = SmallOptions();
  options.device = "tpu";

  absl::StatusOr<std::unique_ptr<Trainer>> trainer = MakeTorchTrainer(options);

  EXPECT_EQ(trainer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(trainer.status().message(), HasSubstr("device \"tpu\""));
}

TEST(TorchTrainerTest, AutoDeviceUsesCpuWithoutCuda) {
  if (torch::cuda::is_available()) GTEST_SKIP() << "a CUDA device is available";
  TorchTrainerOptions options = SmallOptions();
  options.device = "auto";

  std::unique_ptr<Trainer> trainer = MakeTrainer(options);

  ASSERT_NE(trainer, nullptr);
  EXPECT_EQ(trainer->device(), "cpu");
}

class TorchTrainerFilesTest : public sweep::testing::TempDirTest {};

TEST_F(TorchTrainerFilesTest, BadDataDirNamesFileAndRetries) {
  TorchTrainerOptions options = SmallOptions();
  options.data_dir = dir_;
  std::unique_ptr<Trainer> trainer = MakeTrainer(options);
  ASSERT_NE(trainer, nullptr);
  RecordingObserver observer;

  absl::StatusOr<TrainingResult> failed = trainer->Train(SmallTrial(1), observer);
  for (const char* name : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
    std::filesystem::create_symlink(std::filesystem::path(SWEEP_FASHION_MNIST_DIR) / name,
                                    dir_ / name);
  }
  absl::StatusOr<TrainingResult> retried = trainer->Train(SmallTrial(1), observer);

  EXPECT_EQ(failed.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(failed.status().message(), HasSubstr((dir_ / "train-images-idx3-ubyte.gz").string()));
  ASSERT_TRUE(retried.ok()) << retried.status();
  EXPECT_EQ(retried->outcome, TrainingOutcome::kCompleted);
}

TEST_F(TorchTrainerFilesTest, CheckpointHoldsBestModelAndOptimizer) {
  TorchTrainerOptions options = SmallOptions();
  options.artifacts_dir = dir_;
  std::unique_ptr<Trainer> trainer = MakeTrainer(options);
  ASSERT_NE(trainer, nullptr);
  TrialSpec trial = SmallTrial(1);
  trial.hyperparameters.num_epochs = 2;
  // Augmenting the training batches must leave test evaluation on the plain images.
  trial.hyperparameters.augmentation = Augmentation::kFlipAndCrop;
  RecordingObserver observer;

  absl::StatusOr<TrainingResult> result = trainer->Train(trial, observer);

  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->checkpoint_path, (dir_ / "trial-3-attempt-2" / "best.pt").string());
  LeNet model(trial.hyperparameters);
  torch::optim::Adam optimizer(model->parameters());
  ASSERT_NO_FATAL_FAILURE(
      sweep::testing::LoadCheckpoint(result->checkpoint_path, model, optimizer));
  EXPECT_EQ(optimizer.state().size(), model->parameters().size());
  // The checkpoint is the model the trainer tested: evaluating it on the unaugmented test
  // images reproduces the reported test metrics.
  const TensorDataset test = ToTensorDataset(RealData().test, 0, 1000, torch::kCPU);
  const Evaluation evaluation = Evaluate(model, test, 128);
  const std::map<std::string, double> final_metrics = FinalMetrics(*result);
  EXPECT_EQ(evaluation.accuracy, final_metrics.at("test_accuracy"));
  EXPECT_NEAR(evaluation.loss, final_metrics.at("test_loss"), 1e-9);
}

}  // namespace
}  // namespace sweep::worker
