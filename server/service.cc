#include "server/service.h"

#include <mutex>

#include "common/grpc_status.h"
#include "common/logging.h"
#include "spdlog/spdlog.h"

namespace sweep::server {
namespace {

constexpr size_t kMaxStringLength = 1024;
constexpr int kMaxRowsPerUpdate = 10'000;
// Largest AcquireTrialRequest.max_trials.
constexpr int32_t kMaxGroupTrials = 256;

bool IsFinalSweep(v1::SweepState state) {
  return state == v1::SWEEP_STATE_COMPLETED || state == v1::SWEEP_STATE_FAILED ||
         state == v1::SWEEP_STATE_CANCELLED;
}

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

}  // namespace

grpc::Status SweepServiceImpl::SubmitSweep(grpc::ServerContext* context,
                                           const v1::SubmitSweepRequest* request,
                                           v1::SubmitSweepResponse* response) {
  if (grpc::Status denied = authenticator_.Check(*context, Role::kClient); !denied.ok()) {
    return denied;
  }
  absl::StatusOr<v1::SubmitSweepResponse> result = coordinator_.SubmitSweep(*request);
  if (!result.ok()) {
    spdlog::info("sweep submission rejected: {}", result.status().message());
    return ToGrpcStatus(result.status());
  }
  *response = *std::move(result);
  return grpc::Status::OK;
}

grpc::Status SweepServiceImpl::GetSweep(grpc::ServerContext* context,
                                        const v1::GetSweepRequest* request, v1::Sweep* response) {
  if (grpc::Status denied = authenticator_.Check(*context, Role::kClient); !denied.ok()) {
    return denied;
  }
  absl::StatusOr<v1::Sweep> sweep = coordinator_.store().GetSweep(request->sweep_id());
  if (!sweep.ok()) return ToGrpcStatus(sweep.status());
  *response = *std::move(sweep);
  return grpc::Status::OK;
}

grpc::Status SweepServiceImpl::ListSweeps(grpc::ServerContext* context,
                                          const v1::ListSweepsRequest*,
                                          v1::ListSweepsResponse* response) {
  if (grpc::Status denied = authenticator_.Check(*context, Role::kClient); !denied.ok()) {
    return denied;
  }
  absl::StatusOr<std::vector<v1::Sweep>> sweeps = coordinator_.store().ListSweeps();
  if (!sweeps.ok()) return ToGrpcStatus(sweeps.status());
  for (v1::Sweep& sweep : *sweeps) *response->add_sweeps() = std::move(sweep);
  return grpc::Status::OK;
}

grpc::Status SweepServiceImpl::ListTrials(grpc::ServerContext* context,
                                          const v1::ListTrialsRequest* request,
                                          v1::ListTrialsResponse* response) {
  if (grpc::Status denied = authenticator_.Check(*context, Role::kClient); !denied.ok()) {
    return denied;
  }
  if (request->limit() < 0) {
    return Invalid("limit " + std::to_string(request->limit()) + " is negative; pass 0 for all");
  }
  if (request->sort_by().size() > kMaxStringLength) return Invalid("sort_by is too long");
  absl::StatusOr<v1::Sweep> sweep = coordinator_.store().GetSweep(request->sweep_id());
  if (!sweep.ok()) return ToGrpcStatus(sweep.status());
  absl::StatusOr<std::vector<v1::Trial>> trials = coordinator_.store().ListTrials(
      request->sweep_id(), request->state(), request->sort_by(), request->limit());
  if (!trials.ok()) return ToGrpcStatus(trials.status());
  for (v1::Trial& trial : *trials) *response->add_trials() = std::move(trial);
  return grpc::Status::OK;
}

grpc::Status SweepServiceImpl::GetTrial(grpc::ServerContext* context,
                                        const v1::GetTrialRequest* request,
                                        v1::GetTrialResponse* response) {
  if (grpc::Status denied = authenticator_.Check(*context, Role::kClient); !denied.ok()) {
    return denied;
  }
  absl::StatusOr<v1::GetTrialResponse> trial = coordinator_.store().GetTrial(request->trial_id());
  if (!trial.ok()) return ToGrpcStatus(trial.status());
  *response = *std::move(trial);
  return grpc::Status::OK;
}

grpc::Status SweepServiceImpl::Cancel(grpc::ServerContext* context,
                                      const v1::CancelRequest* request,
                                      v1::CancelResponse* response) {
  if (grpc::Status denied = authenticator_.Check(*context, Role::kClient); !denied.ok()) {
    return denied;
  }
  absl::StatusOr<v1::CancelResponse> result =
      coordinator_.Cancel(request->sweep_id(), request->trial_id());
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

grpc::Status SweepServiceImpl::ListWorkers(grpc::ServerContext* context,
                                           const v1::ListWorkersRequest*,
                                           v1::ListWorkersResponse* response) {
  if (grpc::Status denied = authenticator_.Check(*context, Role::kClient); !denied.ok()) {
    return denied;
  }
  absl::StatusOr<std::vector<v1::Worker>> workers = coordinator_.store().ListWorkers();
  if (!workers.ok()) return ToGrpcStatus(workers.status());
  for (v1::Worker& worker : *workers) *response->add_workers() = std::move(worker);
  return grpc::Status::OK;
}

grpc::Status SweepServiceImpl::WatchSweep(grpc::ServerContext* context,
                                          const v1::WatchSweepRequest* request,
                                          grpc::ServerWriter<v1::WatchSweepEvent>* writer) {
  if (grpc::Status denied = authenticator_.Check(*context, Role::kClient); !denied.ok()) {
    return denied;
  }
  Store& store = coordinator_.store();
  uint64_t seen = coordinator_.change_count();
  while (!context->IsCancelled()) {
    v1::WatchSweepEvent event;
    absl::StatusOr<v1::Sweep> sweep = store.GetSweep(request->sweep_id());
    if (!sweep.ok()) return ToGrpcStatus(sweep.status());
    absl::StatusOr<std::vector<v1::Trial>> running =
        store.ListTrials(request->sweep_id(), v1::TRIAL_STATE_RUNNING, "", 0);
    if (!running.ok()) return ToGrpcStatus(running.status());
    absl::StatusOr<std::vector<v1::Trial>> best =
        store.ListTrials(request->sweep_id(), v1::TRIAL_STATE_COMPLETED, "val_accuracy", 1);
    if (!best.ok()) return ToGrpcStatus(best.status());
    const bool final = IsFinalSweep(sweep->state());
    *event.mutable_sweep() = *std::move(sweep);
    for (v1::Trial& trial : *running) *event.add_running() = std::move(trial);
    if (!best->empty()) *event.mutable_best() = std::move(best->front());
    // A client that went away makes Write fail; the handler then ends without error.
    if (!writer->Write(event) || final) return grpc::Status::OK;

    // Coalesces bursts of metric rows into one event every 200 ms at most.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    const uint64_t now_seen = coordinator_.WaitForChange(seen, std::chrono::seconds(2));
    seen = now_seen;
    if (coordinator_.shutting_down()) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "coordinator is shutting down");
    }
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::RegisterWorker(grpc::ServerContext* context,
                                               const v1::RegisterWorkerRequest* request,
                                               v1::RegisterWorkerResponse* response) {
  if (grpc::Status denied = authenticator_.Check(*context, Role::kWorker); !denied.ok()) {
    return denied;
  }
  if (request->host().empty() || request->host().size() > kMaxStringLength) {
    return Invalid("worker host \"" + request->host().substr(0, 64) +
                   "\" is invalid; send 1 to 1024 characters");
  }
  if (request->device().empty() || request->device().size() > kMaxStringLength) {
    return Invalid("worker device is invalid; send \"cpu\" or \"cuda:N\"");
  }
  absl::StatusOr<int64_t> worker_id =
      coordinator_.store().RegisterWorker(request->host(), request->device(), NowUnixMs());
  if (!worker_id.ok()) return ToGrpcStatus(worker_id.status());
  spdlog::info("worker={} registered: host={} device={}", *worker_id, request->host(),
               request->device());
  response->set_worker_id(*worker_id);
  response->set_heartbeat_interval_ms(static_cast<int32_t>(coordinator_.options().heartbeat_ms));
  response->set_lease_duration_ms(static_cast<int32_t>(coordinator_.options().lease_ms));
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::AcquireTrial(grpc::ServerContext* context,
                                             const v1::AcquireTrialRequest* request,
                                             v1::AcquireTrialResponse* response) {
  if (grpc::Status denied = authenticator_.Check(*context, Role::kWorker); !denied.ok()) {
    return denied;
  }
  if (request->worker_id() <= 0) return Invalid("worker_id is missing; call RegisterWorker first");
  if (request->max_trials() < 0 || request->max_trials() > kMaxGroupTrials) {
    return Invalid("max_trials " + std::to_string(request->max_trials()) +
                   " is out of range; pass 0 to " + std::to_string(kMaxGroupTrials));
  }
  absl::StatusOr<v1::AcquireTrialResponse> result =
      coordinator_.AcquireTrial(request->worker_id(), request->wait_ms(), request->max_trials(),
                                [context] { return context->IsCancelled(); });
  if (!result.ok()) return ToGrpcStatus(result.status());
  *response = *std::move(result);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::StreamTrial(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::TrialCommand, v1::TrialUpdate>* stream) {
  if (grpc::Status denied = authenticator_.Check(*context, Role::kWorker); !denied.ok()) {
    return denied;
  }
  v1::TrialUpdate update;
  if (!stream->Read(&update)) return grpc::Status::OK;
  const v1::Lease lease = update.lease();
  if (lease.trial_id() <= 0 || lease.attempt() <= 0) {
    return Invalid("the first message of a trial stream must carry the lease");
  }

  // The handler thread and the coordinator's cancel path both write; writes are serialized.
  std::mutex write_mutex;
  auto write = [&](const v1::TrialCommand& command) {
    std::lock_guard lock(write_mutex);
    return stream->Write(command);
  };
  const uint64_t token = coordinator_.AddStream(
      lease.trial_id(), [&](v1::StopReason reason, const std::string& message) {
        v1::TrialCommand command;
        command.set_stop(reason);
        command.set_stop_message(message);
        write(command);
      });
  struct Unregister {
    Coordinator& coordinator;
    int64_t trial_id;
    uint64_t token;
    ~Unregister() { coordinator.RemoveStream(trial_id, token); }
  } unregister{coordinator_, lease.trial_id(), token};

  do {
    if (update.lease().trial_id() != lease.trial_id() ||
        update.lease().attempt() != lease.attempt()) {
      return Invalid("trial stream of trial " + std::to_string(lease.trial_id()) +
                     " received an update for trial " + std::to_string(update.lease().trial_id()) +
                     "; open one stream per trial");
    }
    if (update.rows_size() > kMaxRowsPerUpdate) {
      return Invalid("update carries " + std::to_string(update.rows_size()) +
                     " metric rows; send at most " + std::to_string(kMaxRowsPerUpdate));
    }
    absl::StatusOr<LeaseRenewal> renewal = coordinator_.RecordProgress(update);
    if (!renewal.ok()) {
      spdlog::info("trial={} attempt={} worker={} report rejected: {}", lease.trial_id(),
                   lease.attempt(), update.worker_id(), renewal.status().message());
      return ToGrpcStatus(renewal.status());
    }
    v1::TrialCommand command;
    command.set_acked_seq(renewal->acked_seq);
    command.set_lease_expires_unix_ms(renewal->lease_expires_ms);
    command.set_stop(renewal->stop);
    command.set_stop_message(renewal->stop_message);
    if (!write(command)) break;
  } while (stream->Read(&update));
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::FinishTrial(grpc::ServerContext* context,
                                            const v1::FinishTrialRequest* request,
                                            v1::FinishTrialResponse* response) {
  if (grpc::Status denied = authenticator_.Check(*context, Role::kWorker); !denied.ok()) {
    return denied;
  }
  if (request->failure_reason().size() > 64 * kMaxStringLength) {
    return Invalid("failure_reason is too long; send at most 65536 characters");
  }
  absl::StatusOr<v1::TrialState> state = coordinator_.FinishTrial(*request);
  if (!state.ok()) {
    spdlog::info("trial={} attempt={} worker={} finish rejected: {}", request->lease().trial_id(),
                 request->lease().attempt(), request->worker_id(), state.status().message());
    return ToGrpcStatus(state.status());
  }
  response->set_state(*state);
  return grpc::Status::OK;
}

}  // namespace sweep::server
