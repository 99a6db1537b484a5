// Stopping rules end to end: a coordinator process and simulated workers (the test double
// that trains nothing) on loopback.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "tests/support/client.h"
#include "tests/support/process.h"

namespace sweep::testing {
namespace {

using std::chrono::seconds;

// Trials with learning rate 0.1 are bad: the simulated trainer's accuracy ceiling drops by
// 0.15 per decade away from 1e-3.
constexpr char kGrid[] =
    R"({"learning_rate": [0.001, 0.1], "keep_prob": [0.5, 0.6, 0.7], "num_epochs": [4]})";

double Param(const v1::Trial& trial, const std::string& name) {
  for (const v1::Param& param : trial.params()) {
    if (param.name() == name) return param.value().double_value();
  }
  return 0;
}

class EarlyStoppingTest : public ::testing::Test {
 protected:
  std::unique_ptr<Process> StartWorker(const std::string& address) {
    return std::make_unique<Process>(
        BinaryPath("worker/sweep-worker"),
        std::vector<std::string>{"--coordinator", address, "--simulated-trainer",
                                 "--simulated-step-ms", "40", "--simulated-steps-per-epoch", "5",
                                 "--acquire-wait-seconds", "1"},
        dir_.path() / "worker.log");
  }

  int64_t SubmitWithMedianRule(TestClient& client) {
    grpc::ClientContext context;
    v1::SubmitSweepRequest request;
    request.set_grid_json(kGrid);
    request.set_grid_size(6);
    request.set_seed(3);
    request.mutable_stopping_rule()->mutable_median()->set_grace_epochs(1);
    request.mutable_stopping_rule()->mutable_median()->set_min_trials(2);
    v1::SubmitSweepResponse response;
    const grpc::Status status = client.stub().SubmitSweep(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.sweep().id();
  }

  TempDir dir_;
};

TEST_F(EarlyStoppingTest, MedianRuleStopsBadTrialsOnly) {
  CoordinatorProcess coordinator(dir_.path(), dir_.path() / "sweep.db");
  TestClient client(coordinator.address());
  const int64_t sweep_id = SubmitWithMedianRule(client);
  auto worker = StartWorker(coordinator.address());
  const v1::Sweep sweep = client.WaitForSweepEnd(sweep_id, seconds(60));
  ASSERT_EQ(sweep.state(), v1::SWEEP_STATE_COMPLETED) << worker->Log();

  int stopped = 0;
  int epochs_trained = 0;
  for (const v1::Trial& trial : client.Trials(sweep_id)) {
    SCOPED_TRACE("trial " + std::to_string(trial.id()));
    epochs_trained += trial.epoch();
    if (Param(trial, "learning_rate") == 0.001) {
      EXPECT_EQ(trial.state(), v1::TRIAL_STATE_COMPLETED);
      EXPECT_EQ(trial.epoch(), 4);
    } else if (trial.state() == v1::TRIAL_STATE_STOPPED) {
      ++stopped;
      EXPECT_LT(trial.epoch(), 4);
      EXPECT_EQ(trial.failure_reason().rfind("median stopping rule at epoch", 0), 0u)
          << trial.failure_reason();
    }
  }
  EXPECT_GE(stopped, 1);
  EXPECT_LT(epochs_trained, 6 * 4);
  EXPECT_EQ(sweep.counts().stopped(), stopped);
}

TEST_F(EarlyStoppingTest, DecisionsSurviveCoordinatorRestart) {
  // The same sweep twice: once straight through, once with the coordinator killed and
  // restarted in the middle. Every trial must end the same way.
  std::map<int64_t, std::pair<v1::TrialState, int32_t>> straight;
  {
    TempDir run;
    CoordinatorProcess coordinator(run.path(), run.path() / "sweep.db");
    TestClient client(coordinator.address());
    const int64_t sweep_id = SubmitWithMedianRule(client);
    auto worker = StartWorker(coordinator.address());
    ASSERT_EQ(client.WaitForSweepEnd(sweep_id, seconds(60)).state(), v1::SWEEP_STATE_COMPLETED);
    for (const v1::Trial& trial : client.Trials(sweep_id)) {
      straight[trial.ordinal()] = {trial.state(), trial.epoch()};
    }
  }

  const auto db = dir_.path() / "sweep.db";
  auto coordinator = std::make_unique<CoordinatorProcess>(dir_.path(), db);
  const int port = coordinator->port();
  const std::string address = coordinator->address();
  int64_t sweep_id = 0;
  {
    TestClient client(address);
    sweep_id = SubmitWithMedianRule(client);
  }
  auto worker = StartWorker(address);
  ASSERT_TRUE(WaitFor(
      [&] { return QueryInt(db, "SELECT COUNT(*) FROM trials WHERE state IN (3, 6)") >= 3; },
      seconds(30)));
  coordinator->process().Signal(SIGKILL);
  coordinator->process().Wait(seconds(5));
  coordinator =
      std::make_unique<CoordinatorProcess>(dir_.path(), db, std::vector<std::string>{}, port);
  TestClient client(address);
  ASSERT_EQ(client.WaitForSweepEnd(sweep_id, seconds(60)).state(), v1::SWEEP_STATE_COMPLETED);

  for (const v1::Trial& trial : client.Trials(sweep_id)) {
    SCOPED_TRACE("ordinal " + std::to_string(trial.ordinal()));
    EXPECT_EQ(trial.state(), straight[trial.ordinal()].first);
    EXPECT_EQ(trial.epoch(), straight[trial.ordinal()].second);
  }
}

TEST_F(EarlyStoppingTest, ConcurrencyLimitCapsRunningTrials) {
  CoordinatorProcess coordinator(dir_.path(), dir_.path() / "sweep.db");
  TestClient client(coordinator.address());
  grpc::ClientContext context;
  v1::SubmitSweepRequest request;
  request.set_grid_json(R"({"conv1_depth": [1, 2, 3, 4, 5, 6], "num_epochs": [2]})");
  request.set_grid_size(6);
  request.set_max_concurrent_trials(2);
  v1::SubmitSweepResponse response;
  ASSERT_TRUE(client.stub().SubmitSweep(&context, request, &response).ok());
  std::vector<std::unique_ptr<Process>> workers;
  for (int i = 0; i < 4; ++i) workers.push_back(StartWorker(coordinator.address()));

  int64_t max_running = 0;
  WaitFor(
      [&] {
        const v1::Sweep sweep = client.GetSweep(response.sweep().id());
        max_running = std::max(max_running, sweep.counts().running());
        return sweep.state() != v1::SWEEP_STATE_RUNNING;
      },
      seconds(60));
  EXPECT_EQ(client.GetSweep(response.sweep().id()).state(), v1::SWEEP_STATE_COMPLETED);
  EXPECT_EQ(max_running, 2);
}

TEST_F(EarlyStoppingTest, SmallSweepIsNotStarvedByLargeOne) {
  CoordinatorProcess coordinator(dir_.path(), dir_.path() / "sweep.db");
  TestClient client(coordinator.address());
  const int64_t large = client.Submit(
      R"({"conv1_depth": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
          "num_epochs": [1]})",
      20);
  std::vector<std::unique_ptr<Process>> workers;
  for (int i = 0; i < 2; ++i) workers.push_back(StartWorker(coordinator.address()));
  ASSERT_TRUE(WaitFor([&] { return client.GetSweep(large).counts().running() == 2; }, seconds(20)));
  const int64_t small = client.Submit(R"({"conv1_depth": [1, 2], "num_epochs": [1]})", 2);

  ASSERT_EQ(client.WaitForSweepEnd(small, seconds(60)).state(), v1::SWEEP_STATE_COMPLETED);
  // Fair share gives the small sweep the next free slots, long before the large one ends.
  EXPECT_GE(client.GetSweep(large).counts().pending(), 10);
}

}  // namespace
}  // namespace sweep::testing
