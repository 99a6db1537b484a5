// A real sweep: the coordinator and a LibTorch worker as separate processes on loopback,
// training on a subset of the real Fashion-MNIST files.
#include <gtest/gtest.h>

#include "tests/support/client.h"
#include "tests/support/process.h"

namespace sweep::testing {
namespace {

double Metric(const v1::Trial& trial, const std::string& name) {
  for (const v1::Metric& metric : trial.metrics()) {
    if (metric.name() == name) return metric.value();
  }
  return -1;
}

TEST(EndToEnd, TwoTrialSweepLearnsOnRealData) {
  TempDir dir;
  const auto db = dir.path() / "sweep.db";
  CoordinatorProcess coordinator(dir.path(), db);
  Process worker(
      BinaryPath("worker/sweep-worker"),
      {"--coordinator", coordinator.address(), "--data-dir", SWEEP_FASHION_MNIST_DIR,
       "--max-train-images", "4000", "--validation-images", "1000", "--max-test-images", "2000",
       "--log-every-steps", "10", "--artifacts-dir", (dir.path() / "artifacts").string()},
      dir.path() / "worker.log");
  TestClient client(coordinator.address());

  const int64_t sweep_id = client.Submit(
      R"({"conv1_depth": [8, 16], "conv2_depth": [16], "dense_layer_units": [128],
          "batch_size": [64], "keep_prob": [0.5], "num_epochs": [2]})",
      2);
  const v1::Sweep sweep = client.WaitForSweepEnd(sweep_id, std::chrono::minutes(5));
  ASSERT_EQ(sweep.state(), v1::SWEEP_STATE_COMPLETED) << worker.Log();
  EXPECT_EQ(sweep.counts().completed(), 2);

  for (const v1::Trial& trial : client.Trials(sweep_id)) {
    SCOPED_TRACE("trial " + std::to_string(trial.id()));
    EXPECT_EQ(trial.state(), v1::TRIAL_STATE_COMPLETED);
    EXPECT_EQ(trial.attempt(), 1);
    // Ten classes: chance is 0.1. A LeNet-5 reaches about 0.7 after two epochs of 3,000
    // images.
    EXPECT_GT(Metric(trial, "test_accuracy"), 0.6);
    EXPECT_GT(Metric(trial, "best_val_accuracy"), 0.6);
    EXPECT_TRUE(std::filesystem::exists(trial.checkpoint_path())) << trial.checkpoint_path();
    for (int epoch : {1, 2}) {
      for (const char* name : {"train_loss", "train_accuracy", "val_loss", "val_accuracy",
                               "images_per_second", "epoch_seconds"}) {
        EXPECT_EQ(
            QueryInt(db,
                     "SELECT COUNT(*) FROM metrics WHERE trial_id = " + std::to_string(trial.id()) +
                         " AND epoch = " + std::to_string(epoch) + " AND name = '" + name + "'"),
            1)
            << name << " at epoch " << epoch;
      }
    }
  }
}

}  // namespace
}  // namespace sweep::testing
