// A real sweep: the coordinator and a LibTorch worker as separate processes on loopback,
// training on a subset of the real Fashion-MNIST files.
#include <gtest/gtest.h>
#include <signal.h>

#include <set>
#include <thread>

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

// Four trials of one architecture train as one fused group. The one-epoch trials end first
// and are reported while the others train; one four-epoch trial is cancelled mid-group
// and the remaining one completes.
TEST(EndToEnd, FusedGroupKeepsEachTrialSeparate) {
  TempDir dir;
  const auto db = dir.path() / "sweep.db";
  CoordinatorProcess coordinator(dir.path(), db);
  Process worker(BinaryPath("worker/sweep-worker"),
                 {"--coordinator", coordinator.address(), "--data-dir", SWEEP_FASHION_MNIST_DIR,
                  "--max-train-images", "8000", "--validation-images", "1000", "--max-test-images",
                  "2000", "--log-every-steps", "10", "--fuse-trials", "4", "--artifacts-dir",
                  (dir.path() / "artifacts").string()},
                 dir.path() / "worker.log");
  TestClient client(coordinator.address());

  const int64_t sweep_id = client.Submit(
      R"({"conv1_depth": [8], "conv2_depth": [16], "dense_layer_units": [128],
          "batch_size": [64], "keep_prob": [0.5, 0.7], "num_epochs": [1, 4]})",
      4);
  // Waits until a four-epoch trial stored its first row, then cancels it.
  int64_t cancelled_id = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
  while (cancelled_id == 0 && std::chrono::steady_clock::now() < deadline) {
    for (const v1::Trial& trial : client.Trials(sweep_id)) {
      if (trial.state() == v1::TRIAL_STATE_RUNNING && trial.epoch() >= 1 &&
          QueryInt(db, "SELECT COUNT(*) FROM trials WHERE sweep_id = " + std::to_string(sweep_id) +
                           " AND id = " + std::to_string(trial.id()) +
                           " AND params_json LIKE '%\"num_epochs\":4%'") == 1) {
        cancelled_id = trial.id();
        break;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(cancelled_id, 0) << worker.Log();
  {
    grpc::ClientContext context;
    v1::CancelRequest request;
    request.set_sweep_id(sweep_id);
    request.set_trial_id(cancelled_id);
    v1::CancelResponse response;
    ASSERT_TRUE(client.stub().Cancel(&context, request, &response).ok());
  }

  const v1::Sweep sweep = client.WaitForSweepEnd(sweep_id, std::chrono::minutes(5));
  EXPECT_EQ(sweep.counts().completed(), 3) << worker.Log();
  EXPECT_EQ(sweep.counts().cancelled(), 1);
  EXPECT_NE(worker.Log().find("training started as one fused group"), std::string::npos)
      << worker.Log();

  std::set<std::string> checkpoints;
  int64_t latest_one_epoch_end = 0;
  int64_t last_trial_end = 0;
  for (const v1::Trial& trial : client.Trials(sweep_id)) {
    SCOPED_TRACE("trial " + std::to_string(trial.id()));
    EXPECT_EQ(trial.attempt(), 1);
    const std::string id = std::to_string(trial.id());
    const int64_t epochs = QueryInt(
        db, "SELECT COUNT(*) FROM metrics WHERE name = 'val_accuracy' AND trial_id = " + id);
    if (trial.id() == cancelled_id) {
      EXPECT_EQ(trial.state(), v1::TRIAL_STATE_CANCELLED);
      EXPECT_LT(epochs, 4);
      continue;
    }
    EXPECT_EQ(trial.state(), v1::TRIAL_STATE_COMPLETED);
    EXPECT_GT(Metric(trial, "test_accuracy"), 0.5);
    checkpoints.insert(trial.checkpoint_path());
    EXPECT_TRUE(std::filesystem::exists(trial.checkpoint_path())) << trial.checkpoint_path();
    if (epochs == 1) {
      latest_one_epoch_end = std::max(latest_one_epoch_end, trial.finished_unix_ms());
    } else {
      EXPECT_EQ(epochs, 4);
      last_trial_end = trial.finished_unix_ms();
    }
  }
  EXPECT_EQ(checkpoints.size(), 3u);
  EXPECT_GT(latest_one_epoch_end, 0);
  // The one-epoch trials were reported before the group's last trial finished.
  EXPECT_LT(latest_one_epoch_end, last_trial_end);
}

// A fused worker killed mid-group loses no trial: every trial of the group is requeued when
// its lease expires and an unfused worker trains it again.
TEST(EndToEnd, KilledFusedWorkerGroupIsRequeued) {
  TempDir dir;
  const auto db = dir.path() / "sweep.db";
  CoordinatorProcess coordinator(dir.path(), db,
                                 {"--lease-seconds", "2", "--heartbeat-seconds", "0.5"});
  const std::vector<std::string> data_flags = {"--data-dir",          SWEEP_FASHION_MNIST_DIR,
                                               "--max-train-images",  "8000",
                                               "--validation-images", "1000",
                                               "--max-test-images",   "1000",
                                               "--log-every-steps",   "10"};
  std::vector<std::string> fused_flags = {
      "--coordinator", coordinator.address(), "--fuse-trials", "3", "--host", "fused"};
  fused_flags.insert(fused_flags.end(), data_flags.begin(), data_flags.end());
  auto fused = std::make_unique<Process>(BinaryPath("worker/sweep-worker"), fused_flags,
                                         dir.path() / "fused.log");
  TestClient client(coordinator.address());
  const int64_t sweep_id = client.Submit(
      R"({"conv1_depth": [8], "conv2_depth": [16], "dense_layer_units": [64],
          "batch_size": [64], "keep_prob": [0.4, 0.5, 0.6], "num_epochs": [3]})",
      3);
  const auto rows_of_every_trial = [&] {
    return QueryInt(db, "SELECT COUNT(DISTINCT trial_id) FROM metrics WHERE attempt = 1") == 3;
  };
  ASSERT_TRUE(WaitFor(rows_of_every_trial, std::chrono::minutes(2))) << fused->Log();
  fused->Signal(SIGKILL);
  fused->Wait(std::chrono::seconds(10));

  std::vector<std::string> alone_flags = {"--coordinator",
                                          coordinator.address(),
                                          "--fuse-trials",
                                          "1",
                                          "--host",
                                          "alone",
                                          "--acquire-wait-seconds",
                                          "1"};
  alone_flags.insert(alone_flags.end(), data_flags.begin(), data_flags.end());
  Process alone(BinaryPath("worker/sweep-worker"), alone_flags, dir.path() / "alone.log");
  const v1::Sweep sweep = client.WaitForSweepEnd(sweep_id, std::chrono::minutes(5));
  ASSERT_EQ(sweep.state(), v1::SWEEP_STATE_COMPLETED) << alone.Log();
  EXPECT_EQ(sweep.counts().completed(), 3);
  for (const v1::Trial& trial : client.Trials(sweep_id)) {
    SCOPED_TRACE("trial " + std::to_string(trial.id()));
    EXPECT_EQ(trial.attempt(), 2);
    EXPECT_EQ(QueryInt(db,
                       "SELECT COUNT(*) FROM metrics WHERE name = 'val_accuracy' AND "
                       "attempt = 2 AND trial_id = " +
                           std::to_string(trial.id())),
              3);
  }
}

}  // namespace
}  // namespace sweep::testing
