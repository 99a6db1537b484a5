#ifndef SWEEP_CLIENT_COORDINATOR_CLIENT_H_
#define SWEEP_CLIENT_COORDINATOR_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sweep/v1/sweep.grpc.pb.h"

namespace sweep::client {

// Calls SweepService on one coordinator. Every unary call has a deadline of `timeout` and
// fails at once, without waiting for the channel to connect, when the coordinator cannot
// be reached. Errors keep their gRPC code. UNAVAILABLE and DEADLINE_EXCEEDED get a message
// that names the address and the fix.
class CoordinatorClient {
 public:
  // Creates an insecure channel to `address` (HOST:PORT); nothing connects before the
  // first call.
  CoordinatorClient(std::string address, std::chrono::milliseconds timeout);

  absl::StatusOr<v1::SubmitSweepResponse> SubmitSweep(const v1::SubmitSweepRequest& request);
  absl::StatusOr<v1::Sweep> GetSweep(int64_t sweep_id);
  absl::StatusOr<std::vector<v1::Sweep>> ListSweeps();
  absl::StatusOr<std::vector<v1::Trial>> ListTrials(const v1::ListTrialsRequest& request);
  absl::StatusOr<v1::GetTrialResponse> GetTrial(int64_t trial_id);
  // Cancels the whole sweep when `trial_id` is 0, else that trial of the sweep.
  absl::StatusOr<v1::CancelResponse> Cancel(int64_t sweep_id, int64_t trial_id);
  absl::StatusOr<std::vector<v1::Worker>> ListWorkers();

  // Reads WatchSweep events until the coordinator ends the stream, calling `on_event` for
  // each. The stream has no deadline, because a sweep can run for hours.
  absl::Status WatchSweep(int64_t sweep_id,
                          const std::function<void(const v1::WatchSweepEvent&)>& on_event);

 private:
  template <typename Request, typename Response>
  using UnaryMethod = grpc::Status (v1::SweepService::Stub::*)(grpc::ClientContext*, const Request&,
                                                               Response*);

  template <typename Request, typename Response>
  absl::StatusOr<Response> Call(UnaryMethod<Request, Response> method, const Request& request);

  // Converts a failed call's status, rewriting the message of the codes that mean the
  // coordinator is unreachable.
  absl::Status ConvertStatus(const grpc::Status& status) const;

  const std::string address_;
  const std::chrono::milliseconds timeout_;
  std::unique_ptr<v1::SweepService::Stub> stub_;
};

}  // namespace sweep::client

#endif  // SWEEP_CLIENT_COORDINATOR_CLIENT_H_
