#ifndef SWEEP_SERVER_COORDINATOR_H_
#define SWEEP_SERVER_COORDINATOR_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "server/metrics.h"
#include "server/store.h"
#include "server/tensorboard.h"
#include "sweep/v1/sweep.pb.h"

namespace sweep::server {

struct CoordinatorOptions {
  // A lease not renewed by a heartbeat for this long expires and its trial is requeued.
  int64_t lease_ms = 30'000;
  // Heartbeat interval sent to workers at registration.
  int64_t heartbeat_ms = 5'000;
  // Attempts a trial gets before an expired lease fails it.
  int32_t max_attempts = 3;
  // How often expired leases are looked for.
  int64_t expiry_check_ms = 1'000;
  // Largest grid_size a sweep may request.
  int64_t max_grid_size = 1'000'000;
  // Maximum time an AcquireTrial call is held open waiting for a pending trial.
  int64_t max_acquire_wait_ms = 30'000;
};

// Receives stop commands for one running trial stream. Called from any thread.
using StopCallback = std::function<void(v1::StopReason reason, const std::string& message)>;

// The coordinator's logic between the gRPC services and the store: validates sweeps,
// samples trials, hands out leases, expires them, and tells running trial streams to stop.
// Thread-safe.
class Coordinator {
 public:
  // `tensorboard` may be null; when set, every sweep, trial and metric row is also written
  // as TensorBoard event files.
  // `metrics` may be null; when set, latencies and stored rows are counted there.
  Coordinator(Store& store, CoordinatorOptions options, TensorBoardWriter* tensorboard = nullptr,
              CoordinatorMetrics* metrics = nullptr);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // Starts the lease expiry thread.
  void Start();
  // Stops the expiry thread and wakes every waiting call, which then returns.
  void Shutdown();

  const CoordinatorOptions& options() const { return options_; }
  Store& store() { return store_; }

  absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(const v1::SubmitSweepRequest& request);
  absl::StatusOr<v1::CancelResponse> Cancel(int64_t sweep_id, int64_t trial_id);

  // Leases a pending trial, waiting up to wait_ms for one to appear, and with it up to
  // max_trials - 1 trials that fuse with it (Store::AcquireTrials). Returns a response
  // without a lease when none did, `abandoned` returned true or the coordinator shuts down.
  absl::StatusOr<v1::AcquireTrialResponse> AcquireTrial(int64_t worker_id, int64_t wait_ms,
                                                        int32_t max_trials,
                                                        const std::function<bool()>& abandoned);

  // Stores a trial stream's metric rows and renews its lease.
  absl::StatusOr<LeaseRenewal> RecordProgress(const v1::TrialUpdate& update);
  absl::StatusOr<v1::TrialState> FinishTrial(const v1::FinishTrialRequest& request);

  // Registers the stop callback of the open stream of a trial; returns a token for
  // RemoveStream. A later registration for the same trial replaces the earlier one.
  uint64_t AddStream(int64_t trial_id, StopCallback callback);
  void RemoveStream(int64_t trial_id, uint64_t token);

  // Counter raised by every change to sweeps or trials.
  uint64_t change_count();
  // Waits until change_count() differs from `seen`, the timeout passes or shutdown.
  // Returns the new count.
  uint64_t WaitForChange(uint64_t seen, std::chrono::milliseconds timeout);
  bool shutting_down();

  // Runs one lease expiry pass now.
  absl::StatusOr<ExpiredLeases> ExpireLeasesNow();

 private:
  void NotifyChange();
  void ExpiryLoop();

  // Logs a TensorBoard write error; event files are a view, so sweeps go on without them.
  void WarnOnTensorBoardError(const absl::Status& status);

  Store& store_;
  TensorBoardWriter* const tensorboard_;
  CoordinatorMetrics* const metrics_;
  const CoordinatorOptions options_;

  std::mutex mutex_;
  std::condition_variable changed_;
  // Wakes the expiry thread at shutdown only; it must not wake on every change.
  std::condition_variable shutdown_;
  uint64_t change_count_ ABSL_GUARDED_BY(mutex_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mutex_) = false;

  std::mutex streams_mutex_;
  struct StreamEntry {
    uint64_t token;
    StopCallback callback;
  };
  std::map<int64_t, StreamEntry> streams_ ABSL_GUARDED_BY(streams_mutex_);
  uint64_t next_token_ ABSL_GUARDED_BY(streams_mutex_) = 1;

  std::thread expiry_thread_;
};

int64_t NowUnixMs();

}  // namespace sweep::server

#endif  // SWEEP_SERVER_COORDINATOR_H_
