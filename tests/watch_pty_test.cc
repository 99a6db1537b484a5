// `sweep watch` against a real coordinator and workers running the simulated trainer (a
// test double that trains nothing), as separate processes on loopback: in a
// pseudo-terminal, killed mid-stream, and on a cancelled sweep.
#include <gtest/gtest.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "client/exit_code.h"
#include "gmock/gmock.h"
#include "tests/support/client.h"
#include "tests/support/process.h"

namespace sweep::testing {
namespace {

using ::testing::HasSubstr;

// Two trials of 10 epochs at 10 steps of 30 ms: about 3 s with one worker per trial.
constexpr char kTwoTrialGrid[] = R"({"num_epochs": [10], "conv1_depth": [6, 8]})";
constexpr auto kSweepTimeout = std::chrono::seconds(60);

// Workers with the simulated trainer, one per trial.
std::vector<std::unique_ptr<Process>> StartWorkers(const std::filesystem::path& dir,
                                                   const std::string& address, int count,
                                                   int step_ms) {
  std::vector<std::unique_ptr<Process>> workers;
  for (int i = 0; i < count; ++i) {
    workers.push_back(std::make_unique<Process>(
        BinaryPath("worker/sweep-worker"),
        std::vector<std::string>{"--coordinator", address, "--simulated-trainer",
                                 "--simulated-step-ms", std::to_string(step_ms),
                                 "--acquire-wait-seconds", "1"},
        dir / ("worker-" + std::to_string(i) + ".log")));
  }
  return workers;
}

// A `sweep` process whose stdin, stdout and stderr are the slave side of a pseudo-terminal.
class PtyProcess {
 public:
  explicit PtyProcess(const std::vector<std::string>& arguments) {
    std::vector<std::string> argv_storage = {BinaryPath("client/sweep")};
    argv_storage.insert(argv_storage.end(), arguments.begin(), arguments.end());
    std::vector<char*> argv;
    for (std::string& argument : argv_storage) argv.push_back(argument.data());
    argv.push_back(nullptr);
    winsize size{};
    size.ws_row = 40;
    size.ws_col = 160;
    pid_ = forkpty(&master_fd_, nullptr, nullptr, &size);
    if (pid_ == 0) {
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }

  ~PtyProcess() {
    if (pid_ > 0 && !exit_status_.has_value()) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (master_fd_ >= 0) close(master_fd_);
  }

  bool started() const { return pid_ > 0; }

  // Reads the terminal until the process closes it or `timeout` passes, then waits for the
  // process. Returns its exit status as from waitpid, or nullopt on timeout.
  std::optional<int> ReadUntilExit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    char buffer[4096];
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd descriptor{master_fd_, POLLIN, 0};
      if (poll(&descriptor, 1, 100) < 0 && errno != EINTR) break;
      if (descriptor.revents == 0) continue;
      const ssize_t count = read(master_fd_, buffer, sizeof(buffer));
      if (count > 0) {
        output_.append(buffer, static_cast<size_t>(count));
        continue;
      }
      // Linux fails the read with EIO once no process has the slave side open.
      if (count == 0 || (errno != EINTR && errno != EAGAIN)) break;
    }
    int status = 0;
    const bool exited = WaitFor([&] { return waitpid(pid_, &status, WNOHANG) == pid_; },
                                std::chrono::duration_cast<std::chrono::milliseconds>(std::max(
                                    deadline - std::chrono::steady_clock::now(),
                                    std::chrono::steady_clock::duration(std::chrono::seconds(1)))));
    if (!exited) return std::nullopt;
    exit_status_ = status;
    return status;
  }

  const std::string& output() const { return output_; }

 private:
  pid_t pid_ = -1;
  int master_fd_ = -1;
  std::string output_;
  std::optional<int> exit_status_;
};

int CountRedraws(const std::string& output) {
  // CSI n F moves the cursor up n lines, and CSI J clears the screen below it.
  static const std::regex kRedraw("\x1b\\[[0-9]+F\x1b\\[J");
  return static_cast<int>(std::distance(std::sregex_iterator(output.begin(), output.end(), kRedraw),
                                        std::sregex_iterator()));
}

// Returns whether plain watch output shows a running trial in the sweep's counts.
bool ShowsRunningTrial(const std::string& output) {
  static const std::regex kRunning("running [1-9]");
  return std::regex_search(output, kRunning);
}

class WatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A coordinator that inherits SWEEP_CLIENT_TOKEN would require it from every call.
    unsetenv("SWEEP_CLIENT_TOKEN");
    unsetenv("SWEEP_WORKER_TOKEN");
    coordinator_ = std::make_unique<CoordinatorProcess>(dir_.path(), dir_.path() / "sweep.db");
    client_ = std::make_unique<TestClient>(coordinator_->address());
  }

  // Starts `sweep --coordinator ADDRESS watch SWEEP` with its output in watch-N.log.
  std::unique_ptr<Process> StartPlainWatch(int64_t sweep_id, int index) {
    return std::make_unique<Process>(
        BinaryPath("client/sweep"),
        std::vector<std::string>{"--coordinator", coordinator_->address(), "watch",
                                 std::to_string(sweep_id)},
        dir_.path() / ("watch-" + std::to_string(index) + ".log"));
  }

  CommandResult Sweep(const std::vector<std::string>& arguments) {
    std::vector<std::string> full = {"--coordinator", coordinator_->address()};
    full.insert(full.end(), arguments.begin(), arguments.end());
    return RunCommand(BinaryPath("client/sweep"), full, dir_.path());
  }

  TempDir dir_;
  std::unique_ptr<CoordinatorProcess> coordinator_;
  std::unique_ptr<TestClient> client_;
};

TEST_F(WatchTest, TerminalRedrawsUntilCompleted) {
  const int64_t sweep_id = client_->Submit(kTwoTrialGrid, 2);
  ASSERT_GT(sweep_id, 0);
  // The watch starts before any worker, so it receives the sweep pending, running and
  // completed.
  PtyProcess watch({"--coordinator", coordinator_->address(), "watch", std::to_string(sweep_id)});
  ASSERT_TRUE(watch.started());
  std::vector<std::unique_ptr<Process>> workers =
      StartWorkers(dir_.path(), coordinator_->address(), 2, 30);

  std::optional<int> status = watch.ReadUntilExit(kSweepTimeout);

  ASSERT_TRUE(status.has_value()) << "sweep watch did not exit; output:\n" << watch.output();
  ASSERT_TRUE(WIFEXITED(*status)) << watch.output();
  EXPECT_EQ(WEXITSTATUS(*status), 0) << watch.output();
  EXPECT_GE(CountRedraws(watch.output()), 2) << watch.output();
  const size_t last_redraw = watch.output().rfind("\x1b[J");
  ASSERT_NE(last_redraw, std::string::npos);
  const std::string final_block = watch.output().substr(last_redraw);
  EXPECT_THAT(final_block, HasSubstr("sweep " + std::to_string(sweep_id)));
  EXPECT_THAT(final_block, HasSubstr("completed: "));
  EXPECT_THAT(final_block, HasSubstr("best: trial "));
  EXPECT_THAT(watch.output(), HasSubstr("epoch "));
}

TEST_F(WatchTest, KilledWatchLeavesCoordinatorServing) {
  // 20 epochs run for about 6 s, so that every watcher below finds the sweep running.
  const int64_t sweep_id = client_->Submit(R"({"num_epochs": [20], "conv1_depth": [6, 8]})", 2);
  ASSERT_GT(sweep_id, 0);
  std::vector<std::unique_ptr<Process>> workers =
      StartWorkers(dir_.path(), coordinator_->address(), 2, 30);

  // Several watchers, each killed once it has printed a running trial, so that the
  // coordinator's stream writes meet a connection that vanished.
  for (int i = 0; i < 3; ++i) {
    SCOPED_TRACE("watch " + std::to_string(i));
    std::unique_ptr<Process> watch = StartPlainWatch(sweep_id, i);
    const bool streaming =
        WaitFor([&] { return ShowsRunningTrial(watch->Log()); }, std::chrono::seconds(20));
    ASSERT_TRUE(streaming) << watch->Log();
    watch->Signal(SIGKILL);
    std::optional<int> status = watch->Wait(std::chrono::seconds(5));
    ASSERT_TRUE(status.has_value());
    EXPECT_TRUE(WIFSIGNALED(*status));
  }

  CommandResult status = Sweep({"status", std::to_string(sweep_id)});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  const v1::Sweep sweep = client_->WaitForSweepEnd(sweep_id, kSweepTimeout);
  EXPECT_EQ(sweep.state(), v1::SWEEP_STATE_COMPLETED);
  EXPECT_EQ(sweep.counts().completed(), 2);
  EXPECT_TRUE(coordinator_->process().running()) << coordinator_->process().Log();
}

TEST_F(WatchTest, CancelledSweepExitsFive) {
  // 50 epochs at 10 steps of 30 ms run for about 15 s, well past the cancel below.
  const int64_t sweep_id = client_->Submit(R"({"num_epochs": [50], "conv1_depth": [6, 8]})", 2);
  ASSERT_GT(sweep_id, 0);
  std::vector<std::unique_ptr<Process>> workers =
      StartWorkers(dir_.path(), coordinator_->address(), 1, 30);
  std::unique_ptr<Process> watch = StartPlainWatch(sweep_id, 0);
  const bool streaming =
      WaitFor([&] { return ShowsRunningTrial(watch->Log()); }, std::chrono::seconds(20));
  ASSERT_TRUE(streaming) << watch->Log();

  CommandResult cancel = Sweep({"cancel", std::to_string(sweep_id)});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_THAT(cancel.out, HasSubstr("cancelled 1 pending and 1 running trials"));
  std::optional<int> status = watch->Wait(std::chrono::seconds(20));

  ASSERT_TRUE(status.has_value()) << "sweep watch did not exit: " << watch->Log();
  ASSERT_TRUE(WIFEXITED(*status)) << watch->Log();
  EXPECT_EQ(WEXITSTATUS(*status), static_cast<int>(client::kExitSweepNotCompleted)) << watch->Log();
  EXPECT_THAT(watch->Log(),
              HasSubstr("sweep: sweep " + std::to_string(sweep_id) + " ended cancelled"));
}

}  // namespace
}  // namespace sweep::testing
