#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace sweep::testing {

Process::Process(const std::string& program, const std::vector<std::string>& arguments,
                 const std::filesystem::path& log_file)
    : log_file_(log_file) {
  std::vector<std::string> argv_storage = {program};
  argv_storage.insert(argv_storage.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (std::string& argument : argv_storage) argv.push_back(argument.data());
  argv.push_back(nullptr);
  const int log_fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) throw std::runtime_error("cannot open log file " + log_file.string());
  pid_ = fork();
  if (pid_ == 0) {
    // Child: unblock signals the test runner may have blocked, redirect output, exec.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execv(program.c_str(), argv.data());
    _exit(127);
  }
  close(log_fd);
  if (pid_ < 0) throw std::runtime_error("fork failed");
}

Process::~Process() {
  if (!reaped_ && pid_ > 0) {
    kill(pid_, SIGCONT);
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
}

void Process::Signal(int signal_number) {
  if (!reaped_) kill(pid_, signal_number);
}

std::optional<int> Process::Wait(std::chrono::milliseconds timeout) {
  if (reaped_) return status_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const pid_t result = waitpid(pid_, &status_, WNOHANG);
    if (result == pid_) {
      reaped_ = true;
      return status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool Process::running() { return !Wait(std::chrono::milliseconds(0)).has_value(); }

std::string Process::Log() const {
  std::ifstream file(log_file_);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "sweep-test-XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string BinaryPath(const std::string& relative) {
  return std::string(SWEEP_BINARY_DIR) + "/" + relative;
}

namespace {

// The test's environment with "NAME=VALUE" entries set and bare "NAME" entries removed.
std::vector<std::string> MergeEnvironment(const std::vector<std::string>& changes) {
  std::vector<std::string> merged;
  for (char** entry = environ; *entry != nullptr; ++entry) merged.emplace_back(*entry);
  for (const std::string& change : changes) {
    const std::string name = change.substr(0, change.find('='));
    std::erase_if(merged, [&](const std::string& entry) {
      return entry.compare(0, name.size() + 1, name + "=") == 0;
    });
    if (change.find('=') != std::string::npos) merged.push_back(change);
  }
  return merged;
}

std::vector<char*> NullTerminated(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& text : strings) pointers.push_back(text.data());
  pointers.push_back(nullptr);
  return pointers;
}

std::string ReadWholeFile(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

}  // namespace

CommandResult RunCommand(const std::string& program, const std::vector<std::string>& arguments,
                         const std::filesystem::path& dir,
                         const std::vector<std::string>& environment,
                         std::chrono::milliseconds timeout) {
  static std::atomic<int> run_count = 0;
  const int run = ++run_count;
  const std::filesystem::path out_path = dir / ("command-" + std::to_string(run) + ".out");
  const std::filesystem::path err_path = dir / ("command-" + std::to_string(run) + ".err");
  std::vector<std::string> argv_storage = {program};
  argv_storage.insert(argv_storage.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv = NullTerminated(argv_storage);
  std::vector<std::string> environment_storage = MergeEnvironment(environment);
  std::vector<char*> envp = NullTerminated(environment_storage);
  const int out_fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const int err_fd = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out_fd < 0 || err_fd < 0)
    throw std::runtime_error("cannot create output files in " + dir.string());

  // The child calls only async-signal-safe functions, because the test may run threads.
  const pid_t pid = fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(out_fd, STDOUT_FILENO);
    dup2(err_fd, STDERR_FILENO);
    execve(program.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  close(out_fd);
  close(err_fd);
  if (pid < 0) throw std::runtime_error("fork failed");

  CommandResult result;
  int status = 0;
  const bool exited = WaitFor([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    result.timed_out = true;
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ReadWholeFile(out_path);
  result.err = ReadWholeFile(err_path);
  return result;
}

CoordinatorProcess::CoordinatorProcess(const std::filesystem::path& dir,
                                       const std::filesystem::path& db,
                                       std::vector<std::string> extra_arguments, int port) {
  const std::filesystem::path port_file = dir / "coordinator.port";
  std::filesystem::remove(port_file);
  std::vector<std::string> arguments = {"--listen",    "127.0.0.1:" + std::to_string(port),
                                        "--db",        db.string(),
                                        "--port-file", port_file.string()};
  arguments.insert(arguments.end(), extra_arguments.begin(), extra_arguments.end());
  process_ = std::make_unique<Process>(BinaryPath("server/sweep-coordinator"), arguments,
                                       dir / "coordinator.log");
  const bool started =
      WaitFor([&] { return std::filesystem::exists(port_file) || !process_->running(); },
              std::chrono::seconds(20));
  if (!started || !std::filesystem::exists(port_file)) {
    throw std::runtime_error("coordinator did not start: " + process_->Log());
  }
  std::ifstream(port_file) >> port_;
}

}  // namespace sweep::testing
