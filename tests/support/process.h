#ifndef SWEEP_TESTS_SUPPORT_PROCESS_H_
#define SWEEP_TESTS_SUPPORT_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace sweep::testing {

// A child process started with fork/exec, its stdout and stderr appended to a log file.
// Killed with SIGKILL on destruction when still running.
class Process {
 public:
  Process(const std::string& program, const std::vector<std::string>& arguments,
          const std::filesystem::path& log_file);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int signal_number);
  // Waits for the process to exit and returns its exit status as from waitpid, or nullopt
  // on timeout.
  std::optional<int> Wait(std::chrono::milliseconds timeout);
  bool running();
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  std::filesystem::path log_file_;
};

// Polls `condition` every 50 ms until it returns true or the timeout passes.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// A fresh directory under the system temporary directory, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A coordinator process on 127.0.0.1 with a port picked by the kernel (or a given one).
class CoordinatorProcess {
 public:
  CoordinatorProcess(const std::filesystem::path& dir, const std::filesystem::path& db,
                     std::vector<std::string> extra_arguments = {}, int port = 0);
  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  Process& process() { return *process_; }

 private:
  std::unique_ptr<Process> process_;
  int port_ = 0;
};

std::string BinaryPath(const std::string& relative);

// Exit code and output of a command run by RunCommand.
struct CommandResult {
  // The exit code, or -1 when a signal ended the command.
  int exit_code = -1;
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Runs `program` with `arguments` to the end, capturing stdout and stderr in files under
// `dir`. The command gets the test's environment with `environment` applied on top: each
// entry is "NAME=VALUE" to set a variable or "NAME" to remove it. A command still running
// after `timeout` is killed with SIGKILL and reported with `timed_out` set.
CommandResult RunCommand(const std::string& program, const std::vector<std::string>& arguments,
                         const std::filesystem::path& dir,
                         const std::vector<std::string>& environment = {},
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace sweep::testing

#endif  // SWEEP_TESTS_SUPPORT_PROCESS_H_
