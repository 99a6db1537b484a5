// Fault tests with real processes on loopback: workers run the simulated trainer (a test
// double that trains nothing) so the orchestration is what is under test.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <set>
#include <thread>

#include "tests/support/client.h"
#include "tests/support/process.h"

namespace sweep::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// Rows a simulated trial emits: one step loss per step plus four metrics per epoch.
int64_t RowsPerTrial(int epochs, int steps_per_epoch) {
  return static_cast<int64_t>(epochs) * (steps_per_epoch + 4);
}

class FaultToleranceTest : public ::testing::Test {
 protected:
  std::unique_ptr<Process> StartWorker(const std::string& address, const std::string& name,
                                       int step_ms, int steps_per_epoch = 10) {
    return std::make_unique<Process>(
        BinaryPath("worker/sweep-worker"),
        std::vector<std::string>{"--coordinator", address, "--simulated-trainer",
                                 "--simulated-step-ms", std::to_string(step_ms),
                                 "--simulated-steps-per-epoch", std::to_string(steps_per_epoch),
                                 "--acquire-wait-seconds", "1", "--host", name},
        dir_.path() / (name + ".log"));
  }

  int64_t Rows(const std::string& where) {
    return QueryInt(db_, "SELECT COUNT(*) FROM metrics WHERE " + where);
  }

  TempDir dir_;
  std::filesystem::path db_ = dir_.path() / "sweep.db";
};

TEST_F(FaultToleranceTest, KilledWorkerTrialIsRequeued) {
  CoordinatorProcess coordinator(dir_.path(), db_,
                                 {"--lease-seconds", "1", "--heartbeat-seconds", "0.2"});
  TestClient client(coordinator.address());
  const int64_t sweep_id = client.Submit(R"({"num_epochs": [3], "conv1_depth": [8]})", 1);
  auto first = StartWorker(coordinator.address(), "first", 100);
  ASSERT_TRUE(WaitFor([&] { return Rows("attempt = 1") >= 5; }, seconds(20))) << first->Log();

  first->Signal(SIGKILL);
  auto second = StartWorker(coordinator.address(), "second", 10);
  const v1::Sweep sweep = client.WaitForSweepEnd(sweep_id, seconds(30));

  ASSERT_EQ(sweep.state(), v1::SWEEP_STATE_COMPLETED) << second->Log();
  const v1::Trial trial = client.Trials(sweep_id).at(0);
  EXPECT_EQ(trial.attempt(), 2);
  EXPECT_EQ(trial.state(), v1::TRIAL_STATE_COMPLETED);
  EXPECT_GE(Rows("attempt = 1"), 5);
  EXPECT_EQ(Rows("attempt = 2"), RowsPerTrial(3, 10));
  EXPECT_EQ(QueryInt(db_,
                     "SELECT w.host = 'second' FROM trials t JOIN workers w "
                     "ON w.id = t.worker_id WHERE t.id = " +
                         std::to_string(trial.id())),
            1);
}

TEST_F(FaultToleranceTest, PausedWorkerReportsAreRejected) {
  CoordinatorProcess coordinator(dir_.path(), db_,
                                 {"--lease-seconds", "1", "--heartbeat-seconds", "0.2"});
  TestClient client(coordinator.address());
  const int64_t sweep_id = client.Submit(R"({"num_epochs": [4], "conv1_depth": [8]})", 1);
  auto paused = StartWorker(coordinator.address(), "paused", 100);
  ASSERT_TRUE(WaitFor([&] { return Rows("attempt = 1") >= 3; }, seconds(20))) << paused->Log();

  paused->Signal(SIGSTOP);
  auto second = StartWorker(coordinator.address(), "second", 100);
  ASSERT_TRUE(WaitFor([&] { return Rows("attempt = 2") >= 3; }, seconds(20))) << second->Log();
  const int64_t stale_rows = Rows("attempt = 1");
  paused->Signal(SIGCONT);
  const v1::Sweep sweep = client.WaitForSweepEnd(sweep_id, seconds(30));

  ASSERT_EQ(sweep.state(), v1::SWEEP_STATE_COMPLETED);
  const v1::Trial trial = client.Trials(sweep_id).at(0);
  EXPECT_EQ(trial.attempt(), 2);
  EXPECT_EQ(Rows("attempt = 1"), stale_rows);
  EXPECT_EQ(Rows("attempt = 2"), RowsPerTrial(4, 10));
  ASSERT_TRUE(
      WaitFor([&] { return paused->Log().find("dropped") != std::string::npos; }, seconds(10)))
      << paused->Log();
  EXPECT_NE(paused->Log().find("no longer current"), std::string::npos);
  EXPECT_TRUE(paused->running());
}

TEST_F(FaultToleranceTest, EightWorkersClaimEachTrialOnce) {
  CoordinatorProcess coordinator(dir_.path(), db_);
  TestClient client(coordinator.address());
  std::vector<std::unique_ptr<Process>> workers;
  for (int i = 0; i < 8; ++i) {
    workers.push_back(StartWorker(coordinator.address(), "worker" + std::to_string(i), 20));
  }
  const int64_t sweep_id =
      client.Submit(R"({"num_epochs": [2], "conv1_depth": [1, 2, 3, 4, 5, 6, 7, 8]})", 8);
  const v1::Sweep sweep = client.WaitForSweepEnd(sweep_id, seconds(60));

  ASSERT_EQ(sweep.state(), v1::SWEEP_STATE_COMPLETED);
  EXPECT_EQ(sweep.counts().completed(), 8);
  for (const v1::Trial& trial : client.Trials(sweep_id)) {
    EXPECT_EQ(trial.attempt(), 1) << "trial " << trial.id();
  }
  EXPECT_EQ(Rows("attempt = 1"), 8 * RowsPerTrial(2, 10));
  EXPECT_EQ(Rows("attempt > 1"), 0);
}

TEST_F(FaultToleranceTest, CoordinatorRestartLosesNothing) {
  auto coordinator = std::make_unique<CoordinatorProcess>(
      dir_.path(), db_, std::vector<std::string>{"--lease-seconds", "10"});
  const int port = coordinator->port();
  const std::string address = coordinator->address();
  int64_t sweep_id = 0;
  {
    TestClient client(address);
    sweep_id = client.Submit(R"({"num_epochs": [3], "conv1_depth": [1, 2, 3, 4, 5, 6]})", 6);
  }
  auto first = StartWorker(address, "first", 50);
  auto second = StartWorker(address, "second", 50);
  ASSERT_TRUE(
      WaitFor([&] { return QueryInt(db_, "SELECT COUNT(*) FROM trials WHERE state = 3") >= 2; },
              seconds(30)));

  coordinator->process().Signal(SIGKILL);
  coordinator->process().Wait(seconds(5));
  std::this_thread::sleep_for(seconds(1));
  coordinator = std::make_unique<CoordinatorProcess>(
      dir_.path(), db_, std::vector<std::string>{"--lease-seconds", "10"}, port);
  TestClient client(address);
  const v1::Sweep sweep = client.WaitForSweepEnd(sweep_id, seconds(60));

  ASSERT_EQ(sweep.state(), v1::SWEEP_STATE_COMPLETED) << first->Log();
  EXPECT_EQ(sweep.counts().completed(), 6);
  for (const v1::Trial& trial : client.Trials(sweep_id)) {
    SCOPED_TRACE("trial " + std::to_string(trial.id()));
    EXPECT_EQ(trial.attempt(), 1);
    EXPECT_EQ(Rows("trial_id = " + std::to_string(trial.id())), RowsPerTrial(3, 10));
  }
}

TEST_F(FaultToleranceTest, CancelStopsRunningAndPendingTrials) {
  CoordinatorProcess coordinator(dir_.path(), db_);
  TestClient client(coordinator.address());
  const int64_t sweep_id = client.Submit(R"({"num_epochs": [50], "conv1_depth": [1, 2, 3, 4]})", 4);
  auto worker = StartWorker(coordinator.address(), "worker", 50);
  ASSERT_TRUE(WaitFor([&] { return Rows("attempt = 1") >= 3; }, seconds(20))) << worker->Log();

  grpc::ClientContext context;
  v1::CancelRequest request;
  request.set_sweep_id(sweep_id);
  v1::CancelResponse response;
  ASSERT_TRUE(client.stub().Cancel(&context, request, &response).ok());
  EXPECT_EQ(response.cancelled_running(), 1);
  EXPECT_EQ(response.cancelled_pending(), 3);
  const v1::Sweep sweep = client.GetSweep(sweep_id);
  EXPECT_EQ(sweep.state(), v1::SWEEP_STATE_CANCELLED);
  EXPECT_EQ(sweep.counts().cancelled(), 4);

  ASSERT_TRUE(WaitFor([&] { return worker->Log().find("ended as CANCELLED") != std::string::npos; },
                      seconds(5)))
      << worker->Log();
  const int64_t rows_after_cancel = Rows("attempt = 1");
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(Rows("attempt = 1"), rows_after_cancel);

  // The worker keeps serving.
  const int64_t next_sweep = client.Submit(R"({"num_epochs": [1]})", 1);
  EXPECT_EQ(client.WaitForSweepEnd(next_sweep, seconds(20)).state(), v1::SWEEP_STATE_COMPLETED);
}

TEST_F(FaultToleranceTest, NanLossFailsTrialAsDiverged) {
  CoordinatorProcess coordinator(dir_.path(), db_);
  TestClient client(coordinator.address());
  auto worker = StartWorker(coordinator.address(), "worker", 5);
  const int64_t sweep_id = client.Submit(R"({"learning_rate": [1.5], "num_epochs": [2]})", 1);
  const v1::Sweep sweep = client.WaitForSweepEnd(sweep_id, seconds(20));

  EXPECT_EQ(sweep.state(), v1::SWEEP_STATE_FAILED);
  const v1::Trial trial = client.Trials(sweep_id).at(0);
  EXPECT_EQ(trial.state(), v1::TRIAL_STATE_FAILED);
  EXPECT_EQ(trial.failure_reason().rfind("diverged", 0), 0u) << trial.failure_reason();
  EXPECT_TRUE(worker->running());
}

TEST_F(FaultToleranceTest, SigtermReleasesTrialToAnotherWorker) {
  CoordinatorProcess coordinator(dir_.path(), db_);
  TestClient client(coordinator.address());
  const int64_t sweep_id = client.Submit(R"({"num_epochs": [3]})", 1);
  auto first = StartWorker(coordinator.address(), "first", 100);
  ASSERT_TRUE(WaitFor([&] { return Rows("attempt = 1") >= 3; }, seconds(20))) << first->Log();

  first->Signal(SIGTERM);
  const std::optional<int> status = first->Wait(seconds(10));
  ASSERT_TRUE(status.has_value()) << first->Log();
  ASSERT_TRUE(WIFEXITED(*status)) << first->Log();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << first->Log();
  EXPECT_EQ(client.GetSweep(sweep_id).counts().pending(), 1);

  auto second = StartWorker(coordinator.address(), "second", 5);
  EXPECT_EQ(client.WaitForSweepEnd(sweep_id, seconds(20)).state(), v1::SWEEP_STATE_COMPLETED);
  EXPECT_EQ(client.Trials(sweep_id).at(0).attempt(), 2);
}

}  // namespace
// An idle worker waiting for a trial exits on SIGTERM at once, without leasing a trial that
// a sweep submitted right after would offer it.
TEST_F(FaultToleranceTest, SigtermWhileWaitingLeasesNothing) {
  CoordinatorProcess coordinator(dir_.path(), db_);
  TestClient client(coordinator.address());
  auto worker = std::make_unique<Process>(
      BinaryPath("worker/sweep-worker"),
      std::vector<std::string>{"--coordinator", coordinator.address(), "--simulated-trainer",
                               "--acquire-wait-seconds", "20", "--host", "idle"},
      dir_.path() / "idle.log");
  ASSERT_TRUE(
      WaitFor([&] { return QueryInt(db_, "SELECT COUNT(*) FROM workers") == 1; }, seconds(10)));
  // The worker's AcquireTrial call is waiting on the coordinator now.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));

  worker->Signal(SIGTERM);
  const std::optional<int> status = worker->Wait(seconds(5));
  ASSERT_TRUE(status.has_value()) << worker->Log();
  ASSERT_TRUE(WIFEXITED(*status)) << worker->Log();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << worker->Log();
  const int64_t sweep_id = client.Submit(R"({"num_epochs": [1]})", 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(client.Trials(sweep_id).at(0).attempt(), 0);
}

}  // namespace sweep::testing
