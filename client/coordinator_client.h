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

// Environment variable that contains the client token when --token-file is not given.
inline constexpr char kClientTokenVariable[] = "SWEEP_CLIENT_TOKEN";

// Authentication and TLS settings of the channel to the coordinator. The default value
// sends no token and connects in plaintext.
struct ChannelSecurity {
  // Client token sent as "authorization: Bearer TOKEN" on every call. Empty sends none.
  std::string token;
  // Source of the token ("--token-file PATH" or the variable's name), named in error
  // messages. Never the token itself.
  std::string token_source;
  // PEM CA certificates. When set, the channel uses TLS and verifies the coordinator's
  // certificate against them.
  std::string tls_ca_pem;
  // The --tls-ca path, for error messages.
  std::string tls_ca_file;
  // Host name to verify the certificate against in place of the address's host. Empty
  // uses the address's host.
  std::string tls_server_name;
};

// Reads the client token from `token_file`, else takes `environment_token` (the value of
// SWEEP_CLIENT_TOKEN, or null when unset), and reads the CA certificates from
// `tls_ca_file` when it is not empty. A token file loses its trailing line breaks.
// Returns INVALID_ARGUMENT for an unreadable or empty file, a token with characters that
// cannot go into a gRPC header, or a `tls_server_name` without `tls_ca_file`. Messages
// never contain the token.
absl::StatusOr<ChannelSecurity> LoadChannelSecurity(const std::string& token_file,
                                                    const char* environment_token,
                                                    const std::string& tls_ca_file,
                                                    const std::string& tls_server_name);

// Calls SweepService on one coordinator. Every unary call has a deadline of `timeout` and
// fails at once, without waiting for the channel to connect, when the coordinator cannot
// be reached. Errors keep their gRPC code. UNAVAILABLE, DEADLINE_EXCEEDED and
// UNAUTHENTICATED get a message that names the address and the fix.
class CoordinatorClient {
 public:
  // Creates a channel to `address` (HOST:PORT), in plaintext or with TLS as `security`
  // sets; nothing connects before the first call.
  CoordinatorClient(std::string address, std::chrono::milliseconds timeout,
                    ChannelSecurity security = {});

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

  // Adds the bearer token, when there is one, to a call's metadata.
  void Authenticate(grpc::ClientContext& context) const;

  // Converts a failed call's status, rewriting the message of the codes that mean the
  // coordinator is unreachable or rejected the token.
  absl::Status ConvertStatus(const grpc::Status& status) const;

  const std::string address_;
  const std::chrono::milliseconds timeout_;
  const ChannelSecurity security_;
  std::unique_ptr<v1::SweepService::Stub> stub_;
};

}  // namespace sweep::client

#endif  // SWEEP_CLIENT_COORDINATOR_CLIENT_H_
