#ifndef SWEEP_WORKER_AGENT_H_
#define SWEEP_WORKER_AGENT_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "sweep/v1/sweep.grpc.pb.h"
#include "worker/fused_trainer.h"
#include "worker/trainer.h"

namespace sweep::worker {

struct AgentOptions {
  std::string coordinator = "127.0.0.1:50051";
  // Host name reported at registration; empty uses gethostname().
  std::string host;
  // How long one AcquireTrial call may wait on the coordinator for a pending trial.
  std::chrono::milliseconds acquire_wait{10'000};
  // Deadline of each unary call beyond its own waiting time.
  std::chrono::milliseconds call_timeout{10'000};
  // Retry delays after a failed call grow exponentially from the initial to the maximum
  // delay, each with +-50% jitter.
  std::chrono::milliseconds initial_backoff{100};
  std::chrono::milliseconds max_backoff{5'000};
  // Metric rows kept while the coordinator has not acknowledged them; training pauses when
  // the buffer is full, so no row is dropped.
  size_t max_buffered_rows = 100'000;
  // Ends Run after this many trials; 0 runs until stopped.
  int64_t max_trials = 0;
  // Maximum number of trials to lease at once and train as one fused model; 1 trains one
  // trial at a time. Used only when the agent has a FusedTrainer.
  int32_t max_fused_trials = 1;
  // Worker token sent as "authorization: Bearer TOKEN" on every call; empty sends none.
  std::string token;
  // PEM CA certificates; when set, the connection uses TLS and verifies the coordinator.
  std::string tls_ca_pem;
};

// The worker's main loop: registers with the coordinator, acquires trials, trains them
// with the trainer while streaming metrics and heartbeats, and reports each trial's end.
// Rides out coordinator restarts by retrying with backoff and resending unacknowledged
// metric rows.
//
// With a FusedTrainer and max_fused_trials above 1, the agent leases groups of trials that
// fuse and trains each group as one model. Every trial of a group keeps its own stream,
// acknowledgements, stop and end report. Its end is reported as soon as it leaves the
// group.
class Agent {
 public:
  // `fused_trainer` may be null, which trains every trial alone with `trainer`.
  Agent(AgentOptions options, Trainer& trainer, FusedTrainer* fused_trainer = nullptr);
  ~Agent();

  // Runs until Stop() is called (or max_trials trials ended). A trial in training when
  // Stop() is called is stopped after its current step and released back to PENDING.
  // Returns 0 on a clean stop.
  int Run();

  // Requests Run to return; safe to call from any thread.
  void Stop();

 private:
  struct TrialRun;
  bool Register();
  void RunTrial(const v1::AcquireTrialResponse& acquired);
  // Trains the leased trials of a group response; returns how many trials it leased.
  int64_t RunGroup(const v1::AcquireTrialResponse& acquired);
  // Waits until `run` has no unacknowledged rows (or lost its lease), joins its stream
  // thread and reports the trial's end with `result`.
  void ReportEnd(TrialRun& run, std::thread& streamer,
                 const absl::StatusOr<TrainingResult>& result);
  // Hands every trial of `acquired` back to PENDING without training it.
  void ReleaseUntrained(const v1::AcquireTrialResponse& acquired);
  // Reports a trial that cannot train because its parameters are invalid.
  void FailInvalid(const v1::Lease& lease, const absl::Status& status);
  void Finish(const v1::FinishTrialRequest& request);
  void Backoff(int attempt);
  // Adds the token and the deadline (when positive) to a call's context.
  void Prepare(grpc::ClientContext& context, std::chrono::milliseconds timeout) const;
  bool stopping() const { return stop_.load(); }

  const AgentOptions options_;
  Trainer& trainer_;
  FusedTrainer* const fused_trainer_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::WorkerService::Stub> stub_;
  int64_t worker_id_ = 0;
  std::chrono::milliseconds heartbeat_interval_{5'000};
  std::atomic<bool> stop_{false};
  std::mutex acquire_mutex_;
  // The AcquireTrial call in flight, which Stop cancels.
  grpc::ClientContext* acquire_context_ = nullptr;
};

}  // namespace sweep::worker

#endif  // SWEEP_WORKER_AGENT_H_
