#include "client/coordinator_client.h"

#include <grpcpp/grpcpp.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace sweep::client {

CoordinatorClient::CoordinatorClient(std::string address, std::chrono::milliseconds timeout)
    : address_(std::move(address)),
      timeout_(timeout),
      stub_(v1::SweepService::NewStub(
          grpc::CreateChannel(address_, grpc::InsecureChannelCredentials()))) {}

template <typename Request, typename Response>
absl::StatusOr<Response> CoordinatorClient::Call(UnaryMethod<Request, Response> method,
                                                 const Request& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout_);
  context.set_wait_for_ready(false);
  Response response;
  grpc::Status status = (stub_.get()->*method)(&context, request, &response);
  if (!status.ok()) return ConvertStatus(status);
  return response;
}

absl::Status CoordinatorClient::ConvertStatus(const grpc::Status& status) const {
  std::string detail;
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    detail = status.error_message();
  } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    detail = absl::StrCat("no reply within ", timeout_.count() / 1000.0, " s");
  } else {
    return FromGrpcStatus(status);
  }
  std::string message = absl::StrCat("cannot reach coordinator at ", address_, " (", detail,
                                     "): start sweep-coordinator or pass --coordinator");
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), message);
}

absl::StatusOr<v1::SubmitSweepResponse> CoordinatorClient::SubmitSweep(
    const v1::SubmitSweepRequest& request) {
  return Call(&v1::SweepService::Stub::SubmitSweep, request);
}

absl::StatusOr<v1::Sweep> CoordinatorClient::GetSweep(int64_t sweep_id) {
  v1::GetSweepRequest request;
  request.set_sweep_id(sweep_id);
  return Call(&v1::SweepService::Stub::GetSweep, request);
}

absl::StatusOr<std::vector<v1::Sweep>> CoordinatorClient::ListSweeps() {
  absl::StatusOr<v1::ListSweepsResponse> response =
      Call(&v1::SweepService::Stub::ListSweeps, v1::ListSweepsRequest());
  if (!response.ok()) return response.status();
  return std::vector<v1::Sweep>(response->sweeps().begin(), response->sweeps().end());
}

absl::StatusOr<std::vector<v1::Trial>> CoordinatorClient::ListTrials(
    const v1::ListTrialsRequest& request) {
  absl::StatusOr<v1::ListTrialsResponse> response =
      Call(&v1::SweepService::Stub::ListTrials, request);
  if (!response.ok()) return response.status();
  return std::vector<v1::Trial>(response->trials().begin(), response->trials().end());
}

absl::StatusOr<v1::GetTrialResponse> CoordinatorClient::GetTrial(int64_t trial_id) {
  v1::GetTrialRequest request;
  request.set_trial_id(trial_id);
  return Call(&v1::SweepService::Stub::GetTrial, request);
}

absl::StatusOr<v1::CancelResponse> CoordinatorClient::Cancel(int64_t sweep_id, int64_t trial_id) {
  v1::CancelRequest request;
  request.set_sweep_id(sweep_id);
  request.set_trial_id(trial_id);
  return Call(&v1::SweepService::Stub::Cancel, request);
}

absl::StatusOr<std::vector<v1::Worker>> CoordinatorClient::ListWorkers() {
  absl::StatusOr<v1::ListWorkersResponse> response =
      Call(&v1::SweepService::Stub::ListWorkers, v1::ListWorkersRequest());
  if (!response.ok()) return response.status();
  return std::vector<v1::Worker>(response->workers().begin(), response->workers().end());
}

absl::Status CoordinatorClient::WatchSweep(
    int64_t sweep_id, const std::function<void(const v1::WatchSweepEvent&)>& on_event) {
  grpc::ClientContext context;
  context.set_wait_for_ready(false);
  v1::WatchSweepRequest request;
  request.set_sweep_id(sweep_id);
  std::unique_ptr<grpc::ClientReader<v1::WatchSweepEvent>> reader =
      stub_->WatchSweep(&context, request);

  v1::WatchSweepEvent event;
  while (reader->Read(&event)) on_event(event);
  grpc::Status status = reader->Finish();
  if (!status.ok()) return ConvertStatus(status);
  return absl::OkStatus();
}

}  // namespace sweep::client
