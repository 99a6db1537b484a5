#include "bench/load_support.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/status/status.h"

namespace sweep::bench {
namespace {

// Returns the exit status, or nullopt when the process still runs after `timeout`.
std::optional<int> WaitForExit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t result = waitpid(pid, &status, WNOHANG);
    if (result == pid || result < 0) return status;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::stringstream content;
  content << file.rdbuf();
  return content.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CoordinatorProcess>> CoordinatorProcess::Start(
    const std::string& binary, const std::filesystem::path& db,
    const std::filesystem::path& log_file, const std::string& log_level) {
  const std::filesystem::path port_file = log_file.parent_path() / "coordinator.port";
  std::filesystem::remove(port_file);
  std::vector<std::string> arguments = {
      binary,        "--listen",         "127.0.0.1:0", "--db",   db.string(),
      "--port-file", port_file.string(), "--log-level", log_level};
  std::vector<char*> argv;
  for (std::string& argument : arguments) argv.push_back(argument.data());
  argv.push_back(nullptr);
  const int log_fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return absl::FailedPreconditionError("cannot open coordinator log " + log_file.string());
  }

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(log_fd);
  if (pid < 0) return absl::InternalError("fork failed while starting " + binary);

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string port = ReadFile(port_file);
    if (!port.empty() && port.back() == '\n') {
      const std::string address = "127.0.0.1:" + port.substr(0, port.size() - 1);
      return std::unique_ptr<CoordinatorProcess>(new CoordinatorProcess(pid, address));
    }
    if (WaitForExit(pid, std::chrono::milliseconds(0)).has_value()) {
      return absl::FailedPreconditionError("coordinator " + binary +
                                           " exited during startup; see " + log_file.string());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  WaitForExit(pid, std::chrono::seconds(5));
  return absl::DeadlineExceededError(
      "coordinator " + binary + " did not write its port within 30 s; see " + log_file.string());
}

CoordinatorProcess::~CoordinatorProcess() { Stop(); }

int CoordinatorProcess::Stop() {
  if (stopped_) return 0;
  stopped_ = true;
  kill(pid_, SIGTERM);
  if (std::optional<int> status = WaitForExit(pid_, std::chrono::seconds(10))) return *status;
  kill(pid_, SIGKILL);
  WaitForExit(pid_, std::chrono::seconds(5));
  return -1;
}

absl::StatusOr<ProcessUsage> ReadProcessUsage(pid_t pid) {
  const std::filesystem::path proc = "/proc/" + std::to_string(pid);
  const std::string stat = ReadFile(proc / "stat");
  // The command name in field 2 may contain spaces and parentheses. The fields after
  // the last ')' start at field 3 (state).
  const size_t name_end = stat.rfind(')');
  if (stat.empty() || name_end == std::string::npos) {
    return absl::NotFoundError("process " + std::to_string(pid) + " not found in /proc");
  }
  std::istringstream fields(stat.substr(name_end + 1));
  std::vector<std::string> values;
  for (std::string value; fields >> value;) values.push_back(value);
  // utime and stime are fields 14 and 15, in clock ticks.
  if (values.size() < 13) {
    return absl::InternalError("/proc/" + std::to_string(pid) + "/stat has too few fields");
  }
  ProcessUsage usage;
  const double ticks_per_second = static_cast<double>(sysconf(_SC_CLK_TCK));
  usage.cpu_seconds = (std::stod(values[11]) + std::stod(values[12])) / ticks_per_second;

  std::istringstream status(ReadFile(proc / "status"));
  for (std::string line; std::getline(status, line);) {
    // Lines read "VmRSS:\t   12345 kB".
    if (line.rfind("VmRSS:", 0) == 0) usage.rss_kib = std::stoll(line.substr(6));
    if (line.rfind("VmHWM:", 0) == 0) usage.peak_rss_kib = std::stoll(line.substr(6));
  }
  return usage;
}

double Percentile(std::vector<double>& values, double percent) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const double rank = std::ceil(percent / 100.0 * static_cast<double>(values.size()));
  const size_t index = static_cast<size_t>(std::clamp(rank, 1.0, double(values.size()))) - 1;
  return values[index];
}

TempDir::TempDir(const std::string& prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
  if (mkdtemp(pattern.data()) == nullptr) {
    throw std::filesystem::filesystem_error("mkdtemp failed", pattern,
                                            std::error_code(errno, std::generic_category()));
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  if (keep_) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace sweep::bench
