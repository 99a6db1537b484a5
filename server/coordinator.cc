#include "server/coordinator.h"

#include <algorithm>

#include "common/logging.h"
#include "common/params_proto.h"
#include "common/search_space.h"
#include "spdlog/spdlog.h"

namespace sweep::server {

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Coordinator::Coordinator(Store& store, CoordinatorOptions options, TensorBoardWriter* tensorboard,
                         CoordinatorMetrics* metrics)
    : store_(store), tensorboard_(tensorboard), metrics_(metrics), options_(options) {}

void Coordinator::WarnOnTensorBoardError(const absl::Status& status) {
  if (!status.ok()) spdlog::warn("writing TensorBoard event files failed: {}", status.message());
}

Coordinator::~Coordinator() { Shutdown(); }

void Coordinator::Start() {
  expiry_thread_ = std::thread([this] { ExpiryLoop(); });
}

void Coordinator::Shutdown() {
  {
    std::lock_guard lock(mutex_);
    shutting_down_ = true;
  }
  changed_.notify_all();
  shutdown_.notify_all();
  if (expiry_thread_.joinable()) expiry_thread_.join();
}

bool Coordinator::shutting_down() {
  std::lock_guard lock(mutex_);
  return shutting_down_;
}

uint64_t Coordinator::change_count() {
  std::lock_guard lock(mutex_);
  return change_count_;
}

void Coordinator::NotifyChange() {
  {
    std::lock_guard lock(mutex_);
    ++change_count_;
  }
  changed_.notify_all();
}

uint64_t Coordinator::WaitForChange(uint64_t seen, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return change_count_ != seen || shutting_down_; });
  return change_count_;
}

void Coordinator::ExpiryLoop() {
  std::unique_lock lock(mutex_);
  while (!shutting_down_) {
    shutdown_.wait_for(lock, std::chrono::milliseconds(options_.expiry_check_ms),
                       [&] { return shutting_down_; });
    if (shutting_down_) break;
    lock.unlock();
    absl::StatusOr<ExpiredLeases> expired = ExpireLeasesNow();
    if (!expired.ok()) spdlog::error("lease expiry pass failed: {}", expired.status().message());
    lock.lock();
  }
}

absl::StatusOr<ExpiredLeases> Coordinator::ExpireLeasesNow() {
  absl::StatusOr<ExpiredLeases> expired = store_.ExpireLeases(NowUnixMs());
  if (!expired.ok()) return expired;
  if (tensorboard_ != nullptr) {
    for (const auto& [sweep_id, trial_id] : expired->failed_trials) {
      WarnOnTensorBoardError(
          tensorboard_->WriteTrialEnd(sweep_id, trial_id, v1::TRIAL_STATE_FAILED, {}));
    }
  }
  if (expired->requeued + expired->failed > 0) NotifyChange();
  return expired;
}

absl::StatusOr<v1::SubmitSweepResponse> Coordinator::SubmitSweep(
    const v1::SubmitSweepRequest& request) {
  if (request.grid_size() <= 0 || request.grid_size() > options_.max_grid_size) {
    return absl::InvalidArgumentError(
        "grid_size " + std::to_string(request.grid_size()) + " is out of range; pass 1 to " +
        std::to_string(options_.max_grid_size) + " (the coordinator's --max-grid-size)");
  }
  if (request.name().size() > 256) {
    return absl::InvalidArgumentError("sweep name is " + std::to_string(request.name().size()) +
                                      " characters long; use at most 256");
  }
  if (request.max_concurrent_trials() < 0) {
    return absl::InvalidArgumentError("max_concurrent_trials " +
                                      std::to_string(request.max_concurrent_trials()) +
                                      " is negative; pass 0 for no limit");
  }
  v1::StoppingRule stopping_rule = request.stopping_rule();
  if (absl::Status status = NormalizeStoppingRule(stopping_rule); !status.ok()) return status;
  absl::StatusOr<Grid> grid = Grid::Parse(request.grid_json());
  if (!grid.ok()) return grid.status();
  absl::StatusOr<std::vector<Assignment>> sample =
      SampleCombinations(*grid, request.grid_size(), request.seed());
  if (!sample.ok()) return sample.status();

  v1::SubmitSweepResponse response;
  v1::Sweep& sweep = *response.mutable_sweep();
  sweep.set_name(request.name());
  sweep.set_grid_json(grid->CanonicalJson());
  sweep.set_grid_size(request.grid_size());
  sweep.set_seed(request.seed());
  sweep.set_combination_count(grid->CombinationCountDecimal());
  sweep.set_trial_count(static_cast<int64_t>(sample->size()));
  sweep.set_parent_sweep_id(request.parent_sweep_id());
  *sweep.mutable_stopping_rule() = stopping_rule;
  sweep.set_max_concurrent_trials(request.max_concurrent_trials());
  std::vector<std::string> trial_params;
  trial_params.reserve(sample->size());
  for (const Assignment& assignment : *sample) trial_params.push_back(CanonicalJson(assignment));

  if (request.dry_run()) {
    for (size_t i = 0; i < sample->size(); ++i) {
      v1::Trial* trial = response.add_trials();
      trial->set_ordinal(static_cast<int64_t>(i));
      *trial->mutable_params() = AssignmentToProto((*sample)[i]);
    }
    return response;
  }
  if (request.parent_sweep_id() != 0) {
    absl::StatusOr<v1::Sweep> parent = store_.GetSweep(request.parent_sweep_id());
    if (!parent.ok()) return parent.status();
  }

  NewSweep new_sweep{.name = request.name(),
                     .grid_json = sweep.grid_json(),
                     .grid_size = request.grid_size(),
                     .seed = request.seed(),
                     .combination_count = sweep.combination_count(),
                     .parent_sweep_id = request.parent_sweep_id(),
                     .max_attempts = options_.max_attempts,
                     .stopping_rule = stopping_rule.rule_case() == v1::StoppingRule::RULE_NOT_SET
                                          ? std::string()
                                          : stopping_rule.SerializeAsString(),
                     .max_concurrent_trials = request.max_concurrent_trials()};
  absl::StatusOr<int64_t> sweep_id = store_.CreateSweep(new_sweep, trial_params, NowUnixMs());
  if (!sweep_id.ok()) return sweep_id.status();
  spdlog::info("sweep={} name=\"{}\" submitted with {} trials of {} combinations", *sweep_id,
               request.name(), sample->size(), sweep.combination_count());
  if (tensorboard_ != nullptr) {
    std::vector<std::pair<std::string, std::vector<Value>>> grid_values;
    for (const GridParameter& parameter : grid->parameters()) {
      grid_values.emplace_back(parameter.name, parameter.values);
    }
    WarnOnTensorBoardError(
        tensorboard_->WriteSweep(*sweep_id, grid_values,
                                 {"best_val_accuracy", "test_accuracy", "test_loss", "val_accuracy",
                                  "val_loss", "train_accuracy", "train_loss"}));
  }
  NotifyChange();
  absl::StatusOr<v1::Sweep> stored = store_.GetSweep(*sweep_id);
  if (!stored.ok()) return stored.status();
  *response.mutable_sweep() = *std::move(stored);
  return response;
}

absl::StatusOr<v1::CancelResponse> Coordinator::Cancel(int64_t sweep_id, int64_t trial_id) {
  absl::StatusOr<std::vector<int64_t>> running = store_.RunningTrialIds(sweep_id);
  if (!running.ok()) return running.status();
  absl::StatusOr<v1::CancelResponse> response = store_.Cancel(sweep_id, trial_id, NowUnixMs());
  if (!response.ok()) return response.status();
  spdlog::info("sweep={} trial={} cancelled: {} pending, {} running", sweep_id, trial_id,
               response->cancelled_pending(), response->cancelled_running());

  if (tensorboard_ != nullptr) {
    for (int64_t id : *running) {
      if (trial_id != 0 && id != trial_id) continue;
      WarnOnTensorBoardError(
          tensorboard_->WriteTrialEnd(sweep_id, id, v1::TRIAL_STATE_CANCELLED, {}));
    }
  }
  std::lock_guard lock(streams_mutex_);
  for (int64_t id : *running) {
    if (trial_id != 0 && id != trial_id) continue;
    auto stream = streams_.find(id);
    if (stream != streams_.end()) {
      stream->second.callback(v1::STOP_REASON_CANCELLED,
                              "trial " + std::to_string(id) + " was cancelled");
    }
  }
  NotifyChange();
  return response;
}

absl::StatusOr<v1::AcquireTrialResponse> Coordinator::AcquireTrial(
    int64_t worker_id, int64_t wait_ms, int32_t max_trials,
    const std::function<bool()>& abandoned) {
  const auto deadline =
      std::chrono::steady_clock::now() +
      std::chrono::milliseconds(std::clamp<int64_t>(wait_ms, 0, options_.max_acquire_wait_ms));
  uint64_t seen = change_count();
  while (true) {
    // A trial leased to a caller that went away would wait for its lease to expire.
    if (abandoned()) return v1::AcquireTrialResponse();
    absl::StatusOr<std::vector<LeaseGrant>> grants;
    {
      ScopedLatencyTimer timer(metrics_ != nullptr ? &metrics_->acquire_latency : nullptr);
      grants = store_.AcquireTrials(worker_id, NowUnixMs(), options_.lease_ms, max_trials);
    }
    if (!grants.ok()) return grants.status();
    v1::AcquireTrialResponse response;
    if (!grants->empty()) {
      for (const LeaseGrant& lease : *grants) {
        absl::StatusOr<Assignment> assignment = AssignmentFromJson(lease.params_json);
        if (!assignment.ok()) return assignment.status();
        if (&lease == &grants->front()) {
          response.mutable_lease()->set_trial_id(lease.trial_id);
          response.mutable_lease()->set_attempt(lease.attempt);
          response.set_sweep_id(lease.sweep_id);
          response.set_lease_expires_unix_ms(lease.lease_expires_ms);
          response.set_trial_seed(lease.trial_seed);
          *response.mutable_params() = AssignmentToProto(*assignment);
        } else {
          v1::GroupedTrial& grouped = *response.add_grouped_trials();
          grouped.mutable_lease()->set_trial_id(lease.trial_id);
          grouped.mutable_lease()->set_attempt(lease.attempt);
          grouped.set_trial_seed(lease.trial_seed);
          *grouped.mutable_params() = AssignmentToProto(*assignment);
        }
        spdlog::info("sweep={} trial={} attempt={} worker={} leased{}", lease.sweep_id,
                     lease.trial_id, lease.attempt, worker_id,
                     grants->size() > 1 ? fmt::format(" in a group of {}", grants->size()) : "");
        if (tensorboard_ != nullptr) {
          WarnOnTensorBoardError(
              tensorboard_->WriteTrialStart(lease.sweep_id, lease.trial_id, *assignment));
        }
      }
      NotifyChange();
      return response;
    }
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline || shutting_down()) return response;
    seen = WaitForChange(seen, std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::min<std::chrono::steady_clock::duration>(
                                       deadline - now, std::chrono::seconds(1))));
  }
}

absl::StatusOr<LeaseRenewal> Coordinator::RecordProgress(const v1::TrialUpdate& update) {
  ScopedLatencyTimer timer(metrics_ != nullptr ? &metrics_->report_latency : nullptr);
  std::vector<v1::MetricRow> rows(update.rows().begin(), update.rows().end());
  absl::StatusOr<LeaseRenewal> renewal = store_.RecordProgress(
      update.lease(), update.worker_id(), rows, NowUnixMs(), options_.lease_ms);
  if (renewal.ok() && !renewal->inserted.empty()) {
    if (metrics_ != nullptr) metrics_->metric_rows_written.Increment(renewal->inserted.size());
    if (tensorboard_ != nullptr) {
      WarnOnTensorBoardError(tensorboard_->WriteMetrics(
          renewal->sweep_id, update.lease().trial_id(), renewal->inserted));
    }
    NotifyChange();
  }
  return renewal;
}

absl::StatusOr<v1::TrialState> Coordinator::FinishTrial(const v1::FinishTrialRequest& request) {
  FinishReport report;
  report.lease = request.lease();
  report.worker_id = request.worker_id();
  report.outcome = request.outcome();
  for (const v1::Metric& metric : request.final_metrics()) {
    report.final_metrics.emplace_back(metric.name(), metric.value());
  }
  report.failure_reason = request.failure_reason();
  report.checkpoint_path = request.checkpoint_path();
  report.last_seq = request.last_seq();
  absl::StatusOr<FinishResult> result = store_.FinishTrial(report, NowUnixMs());
  if (!result.ok()) return result.status();
  if (result->changed) {
    spdlog::info("sweep={} trial={} attempt={} worker={} ended as {}{}", result->sweep_id,
                 request.lease().trial_id(), request.lease().attempt(), request.worker_id(),
                 v1::TrialState_Name(result->state).substr(12),
                 request.failure_reason().empty() ? "" : ": " + request.failure_reason());
    if (tensorboard_ != nullptr && result->state != v1::TRIAL_STATE_PENDING) {
      WarnOnTensorBoardError(tensorboard_->WriteTrialEnd(
          result->sweep_id, request.lease().trial_id(), result->state, report.final_metrics));
    }
    NotifyChange();
  }
  return result->state;
}

uint64_t Coordinator::AddStream(int64_t trial_id, StopCallback callback) {
  std::lock_guard lock(streams_mutex_);
  const uint64_t token = next_token_++;
  streams_[trial_id] = StreamEntry{token, std::move(callback)};
  return token;
}

void Coordinator::RemoveStream(int64_t trial_id, uint64_t token) {
  std::lock_guard lock(streams_mutex_);
  auto stream = streams_.find(trial_id);
  if (stream != streams_.end() && stream->second.token == token) streams_.erase(stream);
}

}  // namespace sweep::server
