#include "worker/agent.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "absl/strings/str_join.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/params_proto.h"
#include "spdlog/spdlog.h"

namespace sweep::worker {
namespace {

// Rows sent in one stream message at most.
constexpr int kMaxRowsPerUpdate = 1000;

bool IsTransient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED || code == grpc::StatusCode::CANCELLED ||
         code == grpc::StatusCode::INTERNAL || code == grpc::StatusCode::UNKNOWN;
}

std::string LocalHostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown";
  return name;
}

// Lists every trial of an AcquireTrial response, the first one included, in one form.
std::vector<v1::GroupedTrial> LeasedTrials(const v1::AcquireTrialResponse& acquired) {
  std::vector<v1::GroupedTrial> leased;
  v1::GroupedTrial& first = leased.emplace_back();
  *first.mutable_lease() = acquired.lease();
  *first.mutable_params() = acquired.params();
  first.set_trial_seed(acquired.trial_seed());
  leased.insert(leased.end(), acquired.grouped_trials().begin(), acquired.grouped_trials().end());
  return leased;
}

absl::StatusOr<Hyperparameters> ParseHyperparameters(
    const google::protobuf::RepeatedPtrField<v1::Param>& params) {
  absl::StatusOr<Assignment> assignment = AssignmentFromProto(params);
  if (!assignment.ok()) return assignment.status();
  return HyperparametersFromAssignment(*assignment);
}

}  // namespace

// State of one leased trial: the training thread adds metric rows; the stream thread sends
// them with heartbeats and drops them once the coordinator acknowledges them.
struct Agent::TrialRun final : TrainingObserver {
  TrialRun(Agent& agent, v1::Lease lease) : agent(agent), lease(std::move(lease)) {}

  void OnMetric(int32_t epoch, int64_t step, std::string_view name, double value) override {
    std::unique_lock lock(mutex);
    // Training pauses while the buffer is full, so an outage loses no row.
    changed.wait(lock, [&] {
      return unacked.size() < agent.options_.max_buffered_rows || lease_lost || abandoned;
    });
    if (lease_lost || abandoned) return;
    v1::MetricRow& row = unacked.emplace_back();
    row.set_seq(next_seq++);
    row.set_epoch(epoch);
    row.set_step(step);
    row.set_name(std::string(name));
    row.set_value(value);
    changed.notify_all();
  }

  bool StopRequested() override { return stop_requested.load() || agent.stopping(); }

  void OnEnded(const absl::StatusOr<TrainingResult>& ended) override {
    std::lock_guard lock(mutex);
    if (!result.has_value()) result = ended;
    changed.notify_all();
  }

  // Waits for the result that OnEnded stored.
  absl::StatusOr<TrainingResult> WaitForResult() {
    std::unique_lock lock(mutex);
    changed.wait(lock, [&] { return result.has_value(); });
    return *result;
  }

  // Keeps a stream open to the coordinator until every row is acknowledged after Close,
  // reconnecting with backoff when the stream breaks.
  void StreamLoop() {
    for (int failures = 0;; ++failures) {
      {
        std::lock_guard lock(mutex);
        if (lease_lost || abandoned || (closing && unacked.empty())) return;
      }
      const grpc::Status status = StreamOnce();
      size_t buffered = 0;
      {
        std::lock_guard lock(mutex);
        if (lease_lost || abandoned || (closing && unacked.empty())) return;
        if (!status.ok() && !IsTransient(status.error_code())) {
          spdlog::warn("trial={} attempt={} lease lost: {}", lease.trial_id(), lease.attempt(),
                       status.error_message());
          LoseLease(v1::STOP_REASON_LEASE_LOST, status.error_message());
          return;
        }
        buffered = unacked.size();
      }
      if (failures == 0 || failures % 10 == 0) {
        spdlog::warn(
            "trial={} attempt={} stream to coordinator broke ({}); reconnecting with {} rows "
            "buffered",
            lease.trial_id(), lease.attempt(), status.error_message(), buffered);
      }
      agent.Backoff(failures);
    }
  }

  grpc::Status StreamOnce() {
    grpc::ClientContext context;
    // A trial stream lives as long as training; keepalive pings, not a deadline, detect a
    // dead coordinator.
    agent.Prepare(context, std::chrono::milliseconds(0));
    {
      std::lock_guard lock(mutex);
      active_context = &context;
    }
    auto stream = agent.stub_->StreamTrial(&context);
    bool reader_done = false;
    std::thread reader([&] {
      v1::TrialCommand command;
      while (stream->Read(&command)) {
        std::lock_guard lock(mutex);
        acked_seq = std::max(acked_seq, command.acked_seq());
        while (!unacked.empty() && unacked.front().seq() <= acked_seq) unacked.pop_front();
        if (command.stop() != v1::STOP_REASON_UNSPECIFIED && !stop_requested.load()) {
          spdlog::info("trial={} attempt={} stop requested by the coordinator: {}",
                       lease.trial_id(), lease.attempt(), command.stop_message());
          stop_reason = command.stop();
          stop_requested = true;
        }
        changed.notify_all();
      }
      std::lock_guard lock(mutex);
      reader_done = true;
      changed.notify_all();
    });

    int64_t sent_seq;
    {
      std::lock_guard lock(mutex);
      sent_seq = acked_seq;
    }
    auto next_heartbeat = std::chrono::steady_clock::now();
    while (true) {
      v1::TrialUpdate update;
      {
        std::unique_lock lock(mutex);
        changed.wait_until(lock, next_heartbeat, [&] {
          return reader_done || lease_lost || abandoned || (closing && unacked.empty()) ||
                 (!unacked.empty() && unacked.back().seq() > sent_seq);
        });
        if (reader_done || lease_lost || abandoned || (closing && unacked.empty())) break;
        for (const v1::MetricRow& row : unacked) {
          if (row.seq() <= sent_seq) continue;
          *update.add_rows() = row;
          sent_seq = row.seq();
          if (update.rows_size() >= kMaxRowsPerUpdate) break;
        }
      }
      *update.mutable_lease() = lease;
      update.set_worker_id(agent.worker_id_);
      if (!stream->Write(update)) break;
      next_heartbeat = std::chrono::steady_clock::now() + agent.heartbeat_interval_;
    }
    stream->WritesDone();
    reader.join();
    const grpc::Status status = stream->Finish();
    std::lock_guard lock(mutex);
    active_context = nullptr;
    return status;
  }

  // Called with `mutex` held.
  void LoseLease(v1::StopReason reason, const std::string& message) {
    lease_lost = true;
    stop_reason = reason;
    stop_message = message;
    stop_requested = true;
    changed.notify_all();
  }

  // Waits until every row is acknowledged, the lease is lost, or the trial was cancelled
  // (the coordinator rejects a cancelled trial's rows). Gives up after `patience` when the
  // agent is stopping.
  void Close(std::chrono::milliseconds patience) {
    std::unique_lock lock(mutex);
    closing = true;
    changed.notify_all();
    const auto flushed = [&] {
      return unacked.empty() || lease_lost || stop_reason == v1::STOP_REASON_CANCELLED;
    };
    while (!flushed()) {
      if (agent.stopping()) {
        if (!changed.wait_for(lock, patience, flushed)) break;
      } else {
        changed.wait_for(lock, std::chrono::milliseconds(500), flushed);
      }
    }
    if (!flushed()) {
      spdlog::warn("trial={} attempt={} {} metric rows not acknowledged before shutdown",
                   lease.trial_id(), lease.attempt(), unacked.size());
    }
    abandoned = true;
    if (active_context != nullptr) active_context->TryCancel();
    changed.notify_all();
  }

  Agent& agent;
  const v1::Lease lease;
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<v1::MetricRow> unacked;
  int64_t next_seq = 1;
  int64_t acked_seq = 0;
  bool closing = false;
  bool abandoned = false;
  bool lease_lost = false;
  std::atomic<bool> stop_requested{false};
  v1::StopReason stop_reason = v1::STOP_REASON_UNSPECIFIED;
  std::string stop_message;
  grpc::ClientContext* active_context = nullptr;
  // Set by OnEnded.
  std::optional<absl::StatusOr<TrainingResult>> result;
};

Agent::Agent(AgentOptions options, Trainer& trainer, FusedTrainer* fused_trainer)
    : options_(std::move(options)), trainer_(trainer), fused_trainer_(fused_trainer) {
  grpc::ChannelArguments arguments;
  // Keepalive pings every 30 s detect a dead coordinator on idle streams; the coordinator
  // accepts pings every 20 s or slower.
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  arguments.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  arguments.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  arguments.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // Reconnect quickly after a coordinator restart.
  arguments.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  arguments.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2'000);
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!options_.tls_ca_pem.empty()) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = options_.tls_ca_pem;
    credentials = grpc::SslCredentials(tls);
  }
  channel_ = grpc::CreateCustomChannel(options_.coordinator, credentials, arguments);
  stub_ = v1::WorkerService::NewStub(channel_);
}

Agent::~Agent() = default;

void Agent::Stop() {
  stop_.store(true);
  // A worker waiting for a trial stops at once instead of leasing one it would hand back.
  std::lock_guard lock(acquire_mutex_);
  if (acquire_context_ != nullptr) acquire_context_->TryCancel();
}

void Agent::ReleaseUntrained(const v1::AcquireTrialResponse& acquired) {
  for (const v1::GroupedTrial& trial : LeasedTrials(acquired)) {
    v1::FinishTrialRequest finish;
    *finish.mutable_lease() = trial.lease();
    finish.set_worker_id(worker_id_);
    finish.set_outcome(v1::TRIAL_OUTCOME_RELEASED);
    finish.set_failure_reason("worker stopping before training");
    Finish(finish);
  }
}

void Agent::Prepare(grpc::ClientContext& context, std::chrono::milliseconds timeout) const {
  if (timeout.count() > 0) context.set_deadline(std::chrono::system_clock::now() + timeout);
  if (!options_.token.empty()) context.AddMetadata("authorization", "Bearer " + options_.token);
}

void Agent::Backoff(int attempt) {
  const double base = std::min<double>(
      static_cast<double>(options_.max_backoff.count()),
      static_cast<double>(options_.initial_backoff.count()) * std::pow(2.0, std::min(attempt, 20)));
  thread_local std::mt19937_64 random(std::random_device{}());
  const double jittered = base * std::uniform_real_distribution<double>(0.5, 1.5)(random);
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(jittered));
  while (!stopping() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool Agent::Register() {
  v1::RegisterWorkerRequest request;
  request.set_host(options_.host.empty() ? LocalHostName() : options_.host);
  request.set_device(trainer_.device());
  for (int attempt = 0; !stopping(); ++attempt) {
    grpc::ClientContext context;
    Prepare(context, options_.call_timeout);
    v1::RegisterWorkerResponse response;
    const grpc::Status status = stub_->RegisterWorker(&context, request, &response);
    if (status.ok()) {
      worker_id_ = response.worker_id();
      heartbeat_interval_ = std::chrono::milliseconds(response.heartbeat_interval_ms());
      spdlog::info("worker={} registered with coordinator {} as host={} device={}", worker_id_,
                   options_.coordinator, request.host(), request.device());
      return true;
    }
    if (!IsTransient(status.error_code())) {
      spdlog::error("registration with coordinator {} rejected: {}", options_.coordinator,
                    status.error_message());
      return false;
    }
    if (attempt == 0 || attempt % 10 == 0) {
      spdlog::warn("cannot reach coordinator {} ({}); retrying", options_.coordinator,
                   status.error_message());
    }
    Backoff(attempt);
  }
  return false;
}

int Agent::Run() {
  if (!Register()) return stopping() ? 0 : 1;
  int64_t trials = 0;
  int failures = 0;
  while (!stopping()) {
    grpc::ClientContext context;
    Prepare(context, options_.acquire_wait + options_.call_timeout);
    v1::AcquireTrialRequest request;
    request.set_worker_id(worker_id_);
    request.set_wait_ms(static_cast<int32_t>(options_.acquire_wait.count()));
    if (fused_trainer_ != nullptr) {
      int64_t group = std::max(1, options_.max_fused_trials);
      // A group never takes the worker past its max_trials.
      if (options_.max_trials > 0) group = std::min(group, options_.max_trials - trials);
      request.set_max_trials(static_cast<int32_t>(group));
    }
    v1::AcquireTrialResponse response;
    {
      std::lock_guard lock(acquire_mutex_);
      if (stopping()) break;
      acquire_context_ = &context;
    }
    const grpc::Status status = stub_->AcquireTrial(&context, request, &response);
    {
      std::lock_guard lock(acquire_mutex_);
      acquire_context_ = nullptr;
    }
    if (stopping()) {
      // A lease granted while the call was cancelled goes back untrained.
      if (status.ok() && response.has_lease()) ReleaseUntrained(response);
      break;
    }
    if (!status.ok()) {
      if (!IsTransient(status.error_code())) {
        spdlog::error("worker={} acquire rejected: {}", worker_id_, status.error_message());
        return 1;
      }
      if (failures == 0 || failures % 10 == 0) {
        spdlog::warn("worker={} acquire failed ({}); retrying", worker_id_, status.error_message());
      }
      Backoff(failures++);
      continue;
    }
    failures = 0;
    if (!response.has_lease()) continue;
    if (response.grouped_trials_size() > 0) {
      trials += RunGroup(response);
    } else {
      RunTrial(response);
      ++trials;
    }
    if (options_.max_trials > 0 && trials >= options_.max_trials) break;
  }
  spdlog::info("worker={} stopped after {} trials", worker_id_, trials);
  return 0;
}

void Agent::FailInvalid(const v1::Lease& lease, const absl::Status& status) {
  spdlog::error("trial={} attempt={} has invalid parameters: {}", lease.trial_id(), lease.attempt(),
                status.message());
  v1::FinishTrialRequest finish;
  *finish.mutable_lease() = lease;
  finish.set_worker_id(worker_id_);
  finish.set_outcome(v1::TRIAL_OUTCOME_FAILED);
  finish.set_failure_reason(std::string(status.message()));
  Finish(finish);
}

void Agent::RunTrial(const v1::AcquireTrialResponse& acquired) {
  const v1::Lease& lease = acquired.lease();
  spdlog::info("sweep={} trial={} attempt={} worker={} training started", acquired.sweep_id(),
               lease.trial_id(), lease.attempt(), worker_id_);
  absl::StatusOr<Hyperparameters> hyperparameters = ParseHyperparameters(acquired.params());
  if (!hyperparameters.ok()) {
    FailInvalid(lease, hyperparameters.status());
    return;
  }

  TrialRun run(*this, lease);
  std::thread streamer([&run] { run.StreamLoop(); });
  TrialSpec spec{.trial_id = lease.trial_id(),
                 .attempt = lease.attempt(),
                 .hyperparameters = *hyperparameters,
                 .seed = acquired.trial_seed()};
  ReportEnd(run, streamer, trainer_.Train(spec, run));
}

int64_t Agent::RunGroup(const v1::AcquireTrialResponse& acquired) {
  const std::vector<v1::GroupedTrial> leased = LeasedTrials(acquired);

  // Every leased trial streams heartbeats from the start, so that no lease expires while
  // the trials before it train. Trials that do not fuse with the first train alone after
  // the group.
  std::vector<std::unique_ptr<TrialRun>> runs;
  std::vector<std::thread> streamers;
  std::vector<TrialSpec> specs;
  std::vector<size_t> fused;
  std::vector<size_t> alone;
  for (const v1::GroupedTrial& trial : leased) {
    absl::StatusOr<Hyperparameters> hyperparameters = ParseHyperparameters(trial.params());
    if (!hyperparameters.ok()) {
      FailInvalid(trial.lease(), hyperparameters.status());
      continue;
    }
    const size_t index = runs.size();
    specs.push_back(TrialSpec{.trial_id = trial.lease().trial_id(),
                              .attempt = trial.lease().attempt(),
                              .hyperparameters = *hyperparameters,
                              .seed = trial.trial_seed()});
    const bool fuses = fused.empty() ||
                       CanFuse(specs[fused.front()].hyperparameters, specs[index].hyperparameters);
    (fuses ? fused : alone).push_back(index);
    runs.push_back(std::make_unique<TrialRun>(*this, trial.lease()));
  }
  for (std::unique_ptr<TrialRun>& run : runs) {
    streamers.emplace_back([run = run.get()] { run->StreamLoop(); });
  }
  // Each trial's end is reported by its own thread as soon as the trial leaves the group.
  std::vector<std::thread> reporters;
  for (size_t i = 0; i < runs.size(); ++i) {
    reporters.emplace_back([this, &runs, &streamers, i] {
      ReportEnd(*runs[i], streamers[i], runs[i]->WaitForResult());
    });
  }

  std::vector<int64_t> ids;
  std::vector<TrialSpec> group_specs;
  std::vector<TrainingObserver*> observers;
  for (size_t index : fused) {
    ids.push_back(specs[index].trial_id);
    group_specs.push_back(specs[index]);
    observers.push_back(runs[index].get());
  }
  spdlog::info("sweep={} trials={} worker={} training started as one fused group",
               acquired.sweep_id(), absl::StrJoin(ids, ","), worker_id_);
  if (!group_specs.empty()) {
    std::vector<absl::StatusOr<TrainingResult>> results =
        fused_trainer_->TrainGroup(group_specs, observers);
    // Results that OnEnded did not deliver: invalid values or a failure of the whole group.
    for (size_t i = 0; i < fused.size(); ++i) runs[fused[i]]->OnEnded(results[i]);
  }
  for (size_t index : alone) {
    spdlog::info(
        "sweep={} trial={} attempt={} worker={} training started alone: it does not "
        "fuse with trial {}",
        acquired.sweep_id(), specs[index].trial_id, specs[index].attempt, worker_id_,
        specs[fused.front()].trial_id);
    runs[index]->OnEnded(trainer_.Train(specs[index], *runs[index]));
  }
  for (std::thread& reporter : reporters) reporter.join();
  return static_cast<int64_t>(leased.size());
}

void Agent::ReportEnd(TrialRun& run, std::thread& streamer,
                      const absl::StatusOr<TrainingResult>& result) {
  const v1::Lease& lease = run.lease;
  v1::FinishTrialRequest finish;
  *finish.mutable_lease() = lease;
  finish.set_worker_id(worker_id_);
  run.Close(std::chrono::seconds(10));
  streamer.join();

  bool lease_lost;
  v1::StopReason stop_reason;
  {
    std::lock_guard lock(run.mutex);
    lease_lost = run.lease_lost;
    stop_reason = run.stop_reason;
    finish.set_last_seq(run.acked_seq);
  }
  if (lease_lost) {
    spdlog::warn("trial={} attempt={} dropped: its lease is no longer current", lease.trial_id(),
                 lease.attempt());
    return;
  }
  if (!result.ok()) {
    finish.set_outcome(v1::TRIAL_OUTCOME_FAILED);
    finish.set_failure_reason(std::string(result.status().message()));
  } else {
    bool has_val_accuracy = false;
    const double* best_val_accuracy = nullptr;
    for (const auto& [name, value] : result->final_metrics) {
      v1::Metric* metric = finish.add_final_metrics();
      metric->set_name(name);
      metric->set_value(value);
      has_val_accuracy |= name == "val_accuracy";
      if (name == "best_val_accuracy") best_val_accuracy = &value;
    }
    // A finished trial's val_accuracy is that of its best-validation checkpoint, so lists
    // and rankings compare finished and running trials on one metric name.
    if (!has_val_accuracy && best_val_accuracy != nullptr) {
      v1::Metric* metric = finish.add_final_metrics();
      metric->set_name("val_accuracy");
      metric->set_value(*best_val_accuracy);
    }
    finish.set_checkpoint_path(result->checkpoint_path);
    switch (result->outcome) {
      case TrainingOutcome::kCompleted:
        finish.set_outcome(v1::TRIAL_OUTCOME_COMPLETED);
        break;
      case TrainingOutcome::kDiverged:
        finish.set_outcome(v1::TRIAL_OUTCOME_FAILED);
        finish.set_failure_reason(result->message);
        break;
      case TrainingOutcome::kStopped:
        // Stopped by the coordinator, or by this worker's shutdown: then the trial goes
        // back to PENDING for another worker.
        finish.set_outcome(stop_reason == v1::STOP_REASON_UNSPECIFIED ? v1::TRIAL_OUTCOME_RELEASED
                                                                      : v1::TRIAL_OUTCOME_STOPPED);
        finish.set_failure_reason(result->message);
        break;
    }
  }
  Finish(finish);
}

void Agent::Finish(const v1::FinishTrialRequest& request) {
  for (int attempt = 0;; ++attempt) {
    grpc::ClientContext context;
    Prepare(context, options_.call_timeout);
    v1::FinishTrialResponse response;
    const grpc::Status status = stub_->FinishTrial(&context, request, &response);
    if (status.ok()) {
      spdlog::info("trial={} attempt={} worker={} ended as {}{}", request.lease().trial_id(),
                   request.lease().attempt(), worker_id_,
                   v1::TrialState_Name(response.state()).substr(12),
                   request.failure_reason().empty() ? "" : ": " + request.failure_reason());
      return;
    }
    const bool retry = IsTransient(status.error_code()) ||
                       status.error_code() == grpc::StatusCode::FAILED_PRECONDITION;
    if (!retry || (stopping() && attempt >= 5)) {
      spdlog::warn("trial={} attempt={} report of its end rejected: {}", request.lease().trial_id(),
                   request.lease().attempt(), status.error_message());
      return;
    }
    if (attempt == 0 || attempt % 10 == 0) {
      spdlog::warn("trial={} attempt={} report of its end failed ({}); retrying",
                   request.lease().trial_id(), request.lease().attempt(), status.error_message());
    }
    Backoff(attempt);
  }
}

}  // namespace sweep::worker
