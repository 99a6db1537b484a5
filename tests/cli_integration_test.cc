// Runs the `sweep` binary as a subprocess against a real coordinator process with a
// temporary SQLite file, on loopback. CliIntegrationTest runs no worker, so its trials stay
// pending until a test cancels them. CliWithWorkerTest completes trials through
// WorkerService the way a worker would, with chosen metrics.

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "sweep/v1/sweep.grpc.pb.h"
#include "tests/cli_test_util.h"
#include "tests/support/process.h"

extern char** environ;

namespace sweep::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kGrid[] = R"({"batch_size": [64, 128], "learning_rate": [0.001, 1e-05]})";

struct CliRun {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

// Runs the sweep binary with `arguments`, its stdout and stderr captured in files under
// `dir`. Kills it and fails the test when it runs longer than `timeout`.
CliRun RunSweepBinary(const std::filesystem::path& dir, const std::vector<std::string>& arguments,
                      std::chrono::seconds timeout = std::chrono::seconds(30)) {
  static int run_count = 0;
  ++run_count;
  const std::filesystem::path out_path = dir / absl::StrCat("cli-", run_count, ".out");
  const std::filesystem::path err_path = dir / absl::StrCat("cli-", run_count, ".err");

  std::vector<std::string> argv_storage = {BinaryPath("client/sweep")};
  argv_storage.insert(argv_storage.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (std::string& argument : argv_storage) argv.push_back(argument.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  const int spawn_error = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  CliRun run;
  if (spawn_error != 0) {
    ADD_FAILURE() << "posix_spawn " << argv[0] << " failed: " << std::strerror(spawn_error);
    return run;
  }

  int status = 0;
  const bool exited = WaitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    ADD_FAILURE() << "sweep " << absl::StrJoin(arguments, " ") << " ran longer than "
                  << timeout.count() << " s";
  }
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  run.out = ReadFile(out_path);
  run.err = ReadFile(err_path);
  return run;
}

class CliIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    try {
      coordinator_ =
          new CoordinatorProcess(dir_->path(), dir_->path() / "sweep.db", {"--log-level", "warn"});
    } catch (const std::exception& error) {
      startup_error_ = new std::string(error.what());
    }
  }

  static void TearDownTestSuite() {
    delete coordinator_;
    coordinator_ = nullptr;
    delete startup_error_;
    startup_error_ = nullptr;
    delete dir_;
    dir_ = nullptr;
  }

  void SetUp() override { ASSERT_EQ(startup_error_, nullptr) << *startup_error_; }

  // Runs `sweep --coordinator ADDRESS ARGUMENTS...` against the test's coordinator.
  CliRun Sweep(std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), {"--coordinator", coordinator_->address()});
    return RunSweepBinary(dir_->path(), arguments);
  }

  // Runs a read command with --json and parses its stdout.
  nlohmann::json SweepJson(std::vector<std::string> arguments) {
    arguments.push_back("--json");
    CliRun run = Sweep(arguments);
    EXPECT_EQ(run.exit_code, 0) << run.err;
    return nlohmann::json::parse(run.out, nullptr, false);
  }

  std::string WriteGrid(const std::string& text) {
    static int grid_count = 0;
    std::filesystem::path path = dir_->path() / absl::StrCat("grid-", ++grid_count, ".json");
    std::ofstream(path) << text;
    return path.string();
  }

  // Submits kGrid and returns the printed sweep id, or 0 after failing the test.
  int64_t Submit(int64_t grid_size, uint64_t seed, const std::string& name = "cli-test") {
    CliRun run = Sweep({"submit", WriteGrid(kGrid), "--grid-size", std::to_string(grid_size),
                        "--seed", std::to_string(seed), "--name", name});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    int64_t id = 0;
    EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(run.out), &id)) << run.out;
    return id;
  }

  static TempDir* dir_;
  static CoordinatorProcess* coordinator_;
  static std::string* startup_error_;
};

TempDir* CliIntegrationTest::dir_ = nullptr;
CoordinatorProcess* CliIntegrationTest::coordinator_ = nullptr;
std::string* CliIntegrationTest::startup_error_ = nullptr;

TEST_F(CliIntegrationTest, SubmitPrintsIdAndSummary) {
  CliRun run = Sweep({"submit", WriteGrid(kGrid), "--grid-size", "3", "--seed", "7"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  int64_t id = 0;
  EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(run.out), &id)) << run.out;
  EXPECT_GT(id, 0);
  EXPECT_THAT(run.err, HasSubstr("4 combinations, 3 trials stored, seed 7"));
  EXPECT_THAT(run.err, Not(HasSubstr("every combination")));
}

TEST_F(CliIntegrationTest, SubmitAboveCountTakesEachOnce) {
  CliRun run = Sweep({"submit", WriteGrid(kGrid), "--grid-size", "10", "--seed", "1"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.err, HasSubstr("every combination is taken once"));
  int64_t id = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(run.out), &id)) << run.out;
  nlohmann::json sweep = SweepJson({"status", std::to_string(id)});
  EXPECT_EQ(sweep["trial_count"], 4);
}

TEST_F(CliIntegrationTest, SubmitAcceptsOldScriptFlags) {
  CliRun run = Sweep({"submit", "--hparams_path", WriteGrid(kGrid), "--grid_size", "2", "--logdir",
                      (dir_->path() / "logs").string(), "--seed", "3"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.err, HasSubstr("coordinator's --logdir"));
}

TEST_F(CliIntegrationTest, SubmitStoresDryRunSample) {
  CliRun dry_run =
      Sweep({"submit", WriteGrid(kGrid), "--grid-size", "3", "--seed", "21", "--dry-run"});
  ASSERT_EQ(dry_run.exit_code, 0) << dry_run.err;
  std::set<std::string> expected;
  for (const std::string& line : Lines(dry_run.out)) {
    if (absl::StartsWith(line, "trial ")) expected.insert(line.substr(line.find(": ") + 2));
  }
  ASSERT_EQ(expected.size(), 3u) << dry_run.out;

  int64_t id = Submit(3, 21);
  nlohmann::json trials = SweepJson({"trials", std::to_string(id)});
  std::set<std::string> stored;
  for (const auto& trial : trials) {
    std::vector<std::string> pairs;
    for (const auto& [name, value] : trial["params"].items()) {
      pairs.push_back(absl::StrCat(name, "=", value.dump()));
    }
    stored.insert(absl::StrJoin(pairs, " "));
  }
  EXPECT_EQ(stored, expected);
}

TEST_F(CliIntegrationTest, StatusListsSweeps) {
  int64_t id = Submit(3, 2, "listed-sweep");
  CliRun run = Sweep({"status"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, StartsWith("id  "));
  EXPECT_THAT(run.out, HasSubstr("listed-sweep"));

  nlohmann::json sweeps = SweepJson({"status"});
  bool found = false;
  for (const auto& sweep : sweeps) {
    if (sweep["id"] != id) continue;
    found = true;
    EXPECT_EQ(sweep["name"], "listed-sweep");
    EXPECT_EQ(sweep["state"], "running");
    EXPECT_EQ(sweep["counts"]["pending"], 3);
  }
  EXPECT_TRUE(found) << sweeps.dump();
}

TEST_F(CliIntegrationTest, StatusOfOneSweepShowsCounts) {
  int64_t id = Submit(3, 4);
  CliRun run = Sweep({"status", std::to_string(id)});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("combinations  4"));
  EXPECT_THAT(run.out, HasSubstr("pending       3"));
}

TEST_F(CliIntegrationTest, TrialsShowsParamColumns) {
  int64_t id = Submit(3, 5);
  CliRun run = Sweep({"trials", std::to_string(id)});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 4u) << run.out;
  EXPECT_THAT(lines[0], StartsWith("id  state    attempt  batch_size  learning_rate"));
  EXPECT_THAT(lines[1], HasSubstr("pending"));
}

TEST_F(CliIntegrationTest, TrialsFiltersByStateAndLimit) {
  int64_t id = Submit(3, 6);
  CliRun completed = Sweep({"trials", std::to_string(id), "--state", "completed"});
  ASSERT_EQ(completed.exit_code, 0) << completed.err;
  EXPECT_EQ(Lines(completed.out).size(), 1u) << completed.out;

  CliRun limited = Sweep({"trials", std::to_string(id), "--limit", "2"});
  ASSERT_EQ(limited.exit_code, 0) << limited.err;
  EXPECT_EQ(Lines(limited.out).size(), 3u) << limited.out;
}

TEST_F(CliIntegrationTest, TrialShowsOneTrial) {
  int64_t id = Submit(2, 8);
  nlohmann::json trials = SweepJson({"trials", std::to_string(id)});
  ASSERT_EQ(trials.size(), 2u);
  std::string trial_id = std::to_string(trials[0]["id"].get<int64_t>());

  CliRun run = Sweep({"trial", trial_id});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("state"));
  EXPECT_THAT(run.out, HasSubstr("pending"));
  EXPECT_THAT(run.out, HasSubstr("history: no metrics stored yet"));

  nlohmann::json json = SweepJson({"trial", trial_id});
  EXPECT_EQ(json["trial"]["sweep_id"], id);
  EXPECT_TRUE(json["history"].empty());
}

TEST_F(CliIntegrationTest, ExportCsvHasRowPerTrial) {
  int64_t id = Submit(3, 9);
  CliRun run = Sweep({"export", std::to_string(id), "--format", "csv"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 4u) << run.out;
  EXPECT_EQ(lines[0],
            "trial_id,ordinal,state,attempt,epoch,batch_size,learning_rate,failure_reason");
}

TEST_F(CliIntegrationTest, ExportJsonWritesOutputFile) {
  int64_t id = Submit(3, 10);
  std::filesystem::path output = dir_->path() / "export.json";
  CliRun run =
      Sweep({"export", std::to_string(id), "--format", "json", "--output", output.string()});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_TRUE(run.out.empty()) << run.out;
  nlohmann::json json = nlohmann::json::parse(ReadFile(output), nullptr, false);
  ASSERT_TRUE(json.is_array()) << ReadFile(output);
  EXPECT_EQ(json.size(), 3u);
}

TEST_F(CliIntegrationTest, ExportMetricsWithoutRunsIsHeaderOnly) {
  int64_t id = Submit(2, 11);
  CliRun run = Sweep({"export", std::to_string(id), "--format", "csv", "--metrics"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "trial_id,attempt,epoch,step,name,value\n");
}

TEST_F(CliIntegrationTest, CancelCancelsPendingTrials) {
  int64_t id = Submit(3, 12);
  CliRun run = Sweep({"cancel", std::to_string(id)});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "cancelled 3 pending and 0 running trials\n");

  nlohmann::json sweep = SweepJson({"status", std::to_string(id)});
  EXPECT_EQ(sweep["counts"]["cancelled"], 3);
  EXPECT_EQ(sweep["state"], "cancelled");
}

TEST_F(CliIntegrationTest, CancelOneTrial) {
  int64_t id = Submit(3, 13);
  nlohmann::json trials = SweepJson({"trials", std::to_string(id)});
  ASSERT_FALSE(trials.empty());
  std::string trial_id = std::to_string(trials[0]["id"].get<int64_t>());
  CliRun run = Sweep({"cancel", std::to_string(id), "--trial", trial_id});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "cancelled 1 pending and 0 running trials\n");
}

TEST_F(CliIntegrationTest, WatchCancelledSweepExitsFive) {
  int64_t id = Submit(2, 14);
  ASSERT_EQ(Sweep({"cancel", std::to_string(id)}).exit_code, 0);
  CliRun run = Sweep({"watch", std::to_string(id)});
  EXPECT_EQ(run.exit_code, 5) << run.err;
  EXPECT_THAT(run.out, HasSubstr(absl::StrCat("sweep ", id)));
  EXPECT_THAT(run.err, HasSubstr("ended cancelled"));
}

TEST_F(CliIntegrationTest, WorkersListsNone) {
  CliRun run = Sweep({"workers"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "id  host  device  current_trial  last_heartbeat_s\n");
  EXPECT_EQ(SweepJson({"workers"}), nlohmann::json::array());
}

TEST_F(CliIntegrationTest, BestWithoutCompletedTrialExitsThree) {
  int64_t id = Submit(2, 15);
  CliRun run = Sweep({"best", std::to_string(id)});
  EXPECT_EQ(run.exit_code, 3);
  EXPECT_THAT(run.err, HasSubstr("no completed trial"));
}

TEST_F(CliIntegrationTest, RefineWithoutCompletedTrialExitsThree) {
  int64_t id = Submit(2, 16);
  CliRun run = Sweep(
      {"refine", std::to_string(id), "--top", "2", "--grid-size", "4", "--seed", "1", "--dry-run"});
  EXPECT_EQ(run.exit_code, 3);
}

TEST_F(CliIntegrationTest, UnknownSweepExitsThree) {
  CliRun status = Sweep({"status", "987654321"});
  EXPECT_EQ(status.exit_code, 3) << status.err;
  EXPECT_THAT(status.err, StartsWith("sweep: "));
  CliRun trial = Sweep({"trial", "987654321"});
  EXPECT_EQ(trial.exit_code, 3) << trial.err;
}

TEST_F(CliIntegrationTest, ClosedPortExitsFour) {
  std::string address = absl::StrCat("127.0.0.1:", ClosedLoopbackPort());
  CliRun run = RunSweepBinary(dir_->path(), {"--coordinator", address, "status"});
  EXPECT_EQ(run.exit_code, 4);
  EXPECT_THAT(run.err, StartsWith(absl::StrCat("sweep: cannot reach coordinator at ", address)));
}

TEST_F(CliIntegrationTest, InvalidGridExitsTwo) {
  CliRun run = Sweep({"submit", WriteGrid(R"({"batch_size": []})"), "--grid-size", "2"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.err, HasSubstr("batch_size"));
}

// Plays a worker through WorkerService: leases the next pending trial, reports metric rows
// on its trial stream and finishes it as completed with chosen final metrics.
class FakeWorker {
 public:
  explicit FakeWorker(const std::string& address)
      : stub_(v1::WorkerService::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))) {
    grpc::ClientContext context;
    SetDeadline(context);
    v1::RegisterWorkerRequest request;
    request.set_host("fake-host");
    request.set_device("cpu");
    v1::RegisterWorkerResponse response;
    grpc::Status status = stub_->RegisterWorker(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    worker_id_ = response.worker_id();
  }

  // Completes the next pending trial after reporting `epochs` epochs of train_loss and
  // val_accuracy rows, the last with `val_accuracy`. Returns the trial id, or 0 after
  // failing the test.
  int64_t CompleteNextTrial(double val_accuracy, double test_accuracy, int epochs = 2) {
    v1::AcquireTrialResponse acquired;
    {
      grpc::ClientContext context;
      SetDeadline(context);
      v1::AcquireTrialRequest request;
      request.set_worker_id(worker_id_);
      request.set_wait_ms(2000);
      grpc::Status status = stub_->AcquireTrial(&context, request, &acquired);
      EXPECT_TRUE(status.ok()) << status.error_message();
      if (!status.ok() || !acquired.has_lease()) {
        ADD_FAILURE() << "no trial was leased";
        return 0;
      }
    }

    const int64_t last_seq = ReportRows(acquired.lease(), val_accuracy, epochs);
    grpc::ClientContext context;
    SetDeadline(context);
    v1::FinishTrialRequest request;
    *request.mutable_lease() = acquired.lease();
    request.set_worker_id(worker_id_);
    request.set_outcome(v1::TRIAL_OUTCOME_COMPLETED);
    request.set_last_seq(last_seq);
    v1::Metric* val = request.add_final_metrics();
    val->set_name("val_accuracy");
    val->set_value(val_accuracy);
    v1::Metric* test = request.add_final_metrics();
    test->set_name("test_accuracy");
    test->set_value(test_accuracy);
    v1::FinishTrialResponse response;
    grpc::Status status = stub_->FinishTrial(&context, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return acquired.lease().trial_id();
  }

 private:
  static void SetDeadline(grpc::ClientContext& context) {
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  }

  // Sends the rows in one update and waits for their acknowledgement; returns the last
  // sequence number.
  int64_t ReportRows(const v1::Lease& lease, double val_accuracy, int epochs) {
    v1::TrialUpdate update;
    *update.mutable_lease() = lease;
    update.set_worker_id(worker_id_);
    int64_t seq = 0;
    for (int epoch = 1; epoch <= epochs; ++epoch) {
      for (const auto& [name, value] :
           {std::pair<std::string, double>{"train_loss", 1.0 / epoch},
            std::pair<std::string, double>{"val_accuracy", val_accuracy * epoch / epochs}}) {
        v1::MetricRow* row = update.add_rows();
        row->set_seq(++seq);
        row->set_epoch(epoch);
        row->set_step(epoch * 100);
        row->set_name(name);
        row->set_value(value);
      }
    }

    grpc::ClientContext context;
    SetDeadline(context);
    auto stream = stub_->StreamTrial(&context);
    EXPECT_TRUE(stream->Write(update));
    v1::TrialCommand command;
    EXPECT_TRUE(stream->Read(&command));
    EXPECT_EQ(command.acked_seq(), seq);
    stream->WritesDone();
    grpc::Status status = stream->Finish();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return seq;
  }

  std::unique_ptr<v1::WorkerService::Stub> stub_;
  int64_t worker_id_ = 0;
};

// A coordinator per test, so that the fake worker leases only the test's own trials.
class CliWithWorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    coordinator_ = std::make_unique<CoordinatorProcess>(
        dir_.path(), dir_.path() / "sweep.db", std::vector<std::string>{"--log-level", "warn"});
    worker_ = std::make_unique<FakeWorker>(coordinator_->address());
  }

  CliRun Sweep(std::vector<std::string> arguments) {
    arguments.insert(arguments.begin(), {"--coordinator", coordinator_->address()});
    return RunSweepBinary(dir_.path(), arguments);
  }

  // Submits kGrid with every combination as a trial and returns the sweep id.
  int64_t SubmitAll() {
    std::filesystem::path grid = dir_.path() / "grid.json";
    std::ofstream(grid) << kGrid;
    CliRun run = Sweep({"submit", grid.string(), "--grid-size", "4", "--seed", "1"});
    EXPECT_EQ(run.exit_code, 0) << run.err;
    int64_t id = 0;
    EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(run.out), &id)) << run.out;
    return id;
  }

  TempDir dir_;
  std::unique_ptr<CoordinatorProcess> coordinator_;
  std::unique_ptr<FakeWorker> worker_;
};

TEST_F(CliWithWorkerTest, TrialsRankNaNLast) {
  int64_t id = SubmitAll();
  const int64_t nan_trial = worker_->CompleteNextTrial(std::nan(""), 0.5);
  const int64_t best_trial = worker_->CompleteNextTrial(0.9, 0.875);
  const int64_t other_trial = worker_->CompleteNextTrial(0.75, 0.5);
  CliRun run = Sweep({"trials", std::to_string(id), "--state", "completed"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 4u) << run.out;
  EXPECT_THAT(lines[1], StartsWith(std::to_string(best_trial) + " "));
  EXPECT_THAT(lines[2], StartsWith(std::to_string(other_trial) + " "));
  EXPECT_THAT(lines[3], StartsWith(std::to_string(nan_trial) + " "));
  EXPECT_THAT(lines[3], HasSubstr("nan"));
}

TEST_F(CliWithWorkerTest, BestShowsHighestValAccuracy) {
  int64_t id = SubmitAll();
  worker_->CompleteNextTrial(std::nan(""), 0.5);
  const int64_t best_trial = worker_->CompleteNextTrial(0.9, 0.875);
  worker_->CompleteNextTrial(0.75, 0.5);
  CliRun run = Sweep({"best", std::to_string(id)});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, StartsWith(absl::StrCat("trial     ", best_trial, "\n")));
  EXPECT_THAT(run.out, HasSubstr("val_accuracy=0.9"));

  CliRun json = Sweep({"best", std::to_string(id), "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json trial = nlohmann::json::parse(json.out, nullptr, false);
  EXPECT_EQ(trial["id"], best_trial);
  EXPECT_EQ(trial["metrics"]["test_accuracy"], 0.875);
}

TEST_F(CliWithWorkerTest, TrialShowsHistoryPerEpoch) {
  SubmitAll();
  const int64_t trial_id = worker_->CompleteNextTrial(0.8, 0.75, 2);
  CliRun run = Sweep({"trial", std::to_string(trial_id)});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("attempt  epoch  step  train_loss  val_accuracy\n"
                                 "1        1      100   1           0.4\n"
                                 "1        2      200   0.5         0.8\n"));
}

TEST_F(CliWithWorkerTest, ExportMetricsWritesEveryRow) {
  int64_t id = SubmitAll();
  const int64_t trial_id = worker_->CompleteNextTrial(0.8, 0.75, 2);
  CliRun run = Sweep({"export", std::to_string(id), "--format", "csv", "--metrics"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 5u) << run.out;
  EXPECT_EQ(lines[1], absl::StrCat(trial_id, ",1,1,100,train_loss,1"));
  EXPECT_EQ(lines[4], absl::StrCat(trial_id, ",1,2,200,val_accuracy,0.8"));
}

TEST_F(CliWithWorkerTest, WorkersShowsRegisteredWorker) {
  CliRun run = Sweep({"workers"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::vector<std::string> lines = Lines(run.out);
  ASSERT_EQ(lines.size(), 2u) << run.out;
  EXPECT_THAT(lines[1], HasSubstr("fake-host  cpu"));
}

TEST_F(CliWithWorkerTest, WatchCompletedSweepExitsZero) {
  int64_t id = SubmitAll();
  for (double accuracy : {0.5, 0.625, 0.75, 0.875}) worker_->CompleteNextTrial(accuracy, 0.5);
  CliRun run = Sweep({"watch", std::to_string(id), "--json"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::vector<std::string> lines = Lines(run.out);
  ASSERT_FALSE(lines.empty());
  nlohmann::json event = nlohmann::json::parse(lines.back(), nullptr, false);
  EXPECT_EQ(event["sweep"]["state"], "completed");
  EXPECT_EQ(event["best"]["metrics"]["val_accuracy"], 0.875);
}

TEST_F(CliWithWorkerTest, RefineSubmitsChildSweep) {
  int64_t id = SubmitAll();
  worker_->CompleteNextTrial(0.5, 0.5);
  worker_->CompleteNextTrial(0.875, 0.5);
  CliRun dry_run = Sweep({"refine", std::to_string(id), "--top", "1", "--grid-size", "3", "--seed",
                          "2", "--dry-run", "--json"});
  ASSERT_EQ(dry_run.exit_code, 0) << dry_run.err;
  nlohmann::json plan = nlohmann::json::parse(dry_run.out, nullptr, false);
  ASSERT_TRUE(plan.contains("grid")) << dry_run.out;

  CliRun run = Sweep({"refine", std::to_string(id), "--top", "1", "--grid-size", "3", "--seed", "2",
                      "--name", "finer"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  int64_t child = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(run.out), &child)) << run.out;
  CliRun status = Sweep({"status", std::to_string(child), "--json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  nlohmann::json sweep = nlohmann::json::parse(status.out, nullptr, false);
  EXPECT_EQ(sweep["parent_sweep_id"], id);
  EXPECT_EQ(sweep["name"], "finer");
  EXPECT_EQ(sweep["grid"], plan["grid"]);
}

}  // namespace
}  // namespace sweep::testing
