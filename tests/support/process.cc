#include "tests/support/process.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

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

CoordinatorProcess::CoordinatorProcess(const std::filesystem::path& dir,
                                       const std::filesystem::path& db,
                                       std::vector<std::string> extra_arguments, int port) {
  const std::filesystem::path port_file = dir / "coordinator.port";
  std::filesystem::remove(port_file);
  std::vector<std::string> arguments = {"--listen", "127.0.0.1:" + std::to_string(port), "--db",
                                        db.string(), "--port-file", port_file.string()};
  arguments.insert(arguments.end(), extra_arguments.begin(), extra_arguments.end());
  process_ = std::make_unique<Process>(BinaryPath("server/sweep-coordinator"), arguments,
                                       dir / "coordinator.log");
  const bool started = WaitFor(
      [&] { return std::filesystem::exists(port_file) || !process_->running(); },
      std::chrono::seconds(20));
  if (!started || !std::filesystem::exists(port_file)) {
    throw std::runtime_error("coordinator did not start: " + process_->Log());
  }
  std::ifstream(port_file) >> port_;
}

}  // namespace sweep::testing
