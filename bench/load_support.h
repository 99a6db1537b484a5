#ifndef SWEEP_BENCH_LOAD_SUPPORT_H_
#define SWEEP_BENCH_LOAD_SUPPORT_H_

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace sweep::bench {

// A sweep-coordinator child process listening on 127.0.0.1 at a port the kernel picks.
// Stopped with SIGTERM (then SIGKILL after 10 s) on destruction. The child is also killed
// when the benchmark process dies, so an aborted run leaves no coordinator behind.
class CoordinatorProcess {
 public:
  // Starts `binary` on `db`, appending its stdout and stderr to `log_file`, and waits up
  // to 30 s for it to write its port. `log_level` is passed as --log-level.
  static absl::StatusOr<std::unique_ptr<CoordinatorProcess>> Start(
      const std::string& binary, const std::filesystem::path& db,
      const std::filesystem::path& log_file, const std::string& log_level);
  ~CoordinatorProcess();
  CoordinatorProcess(const CoordinatorProcess&) = delete;
  CoordinatorProcess& operator=(const CoordinatorProcess&) = delete;

  pid_t pid() const { return pid_; }
  const std::string& address() const { return address_; }

  // Sends SIGTERM and waits for the exit. Returns the exit status from waitpid, or -1
  // when the process had to be killed with SIGKILL.
  int Stop();

 private:
  CoordinatorProcess(pid_t pid, std::string address) : pid_(pid), address_(std::move(address)) {}

  pid_t pid_;
  std::string address_;
  bool stopped_ = false;
};

// CPU time and memory of a process, read from /proc/PID/stat and /proc/PID/status.
struct ProcessUsage {
  // User plus system CPU time since the process started.
  double cpu_seconds = 0;
  // Resident set size now (VmRSS) and its peak so far (VmHWM), in KiB.
  int64_t rss_kib = 0;
  int64_t peak_rss_kib = 0;
};

// Fails with NOT_FOUND when the process does not exist (or already exited).
absl::StatusOr<ProcessUsage> ReadProcessUsage(pid_t pid);

// Nearest-rank percentile (0 < percent <= 100) of `values`, which it sorts in place.
// Returns 0 for an empty vector.
double Percentile(std::vector<double>& values, double percent);

// A fresh directory under the system temporary directory. Removed on destruction unless
// keep() was called.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  void keep() { keep_ = true; }

 private:
  std::filesystem::path path_;
  bool keep_ = false;
};

}  // namespace sweep::bench

#endif  // SWEEP_BENCH_LOAD_SUPPORT_H_
