#include "client/coordinator_client.h"

#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"

namespace sweep::client {
namespace {

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, const char* flag) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " file \"", path, "\" cannot be read: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << file.rdbuf();
  if (file.bad()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " file \"", path, "\" cannot be read"));
  }
  return text.str();
}

// gRPC sends a text header value only when each byte is printable ASCII (space to tilde).
bool IsValidHeaderValue(std::string_view value) {
  for (char c : value) {
    if (c < ' ' || c > '~') return false;
  }
  return true;
}

absl::Status LoadToken(const std::string& token_file, const char* environment_token,
                       ChannelSecurity& security) {
  if (token_file.empty()) {
    if (environment_token == nullptr || *environment_token == '\0') return absl::OkStatus();
    security.token = environment_token;
    security.token_source = kClientTokenVariable;
  } else {
    absl::StatusOr<std::string> text = ReadWholeFile(token_file, "--token-file");
    if (!text.ok()) return text.status();
    // Token files usually end with a line break, which is not part of the token. The
    // coordinator drops it from its own token file in the same way.
    while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
    if (text->empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--token-file file \"", token_file,
                                                     "\" is empty: write the client token "
                                                     "into it"));
    }
    security.token = *std::move(text);
    security.token_source = absl::StrCat("--token-file ", token_file);
  }
  if (!IsValidHeaderValue(security.token)) {
    return absl::InvalidArgumentError(
        absl::StrCat("client token from ", security.token_source,
                     " is invalid: it must be one line of printable ASCII characters"));
  }
  return absl::OkStatus();
}

absl::Status LoadTlsSettings(const std::string& tls_ca_file, const std::string& tls_server_name,
                             ChannelSecurity& security) {
  if (tls_ca_file.empty()) {
    if (tls_server_name.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        "--tls-server-name needs --tls-ca: pass the CA certificate "
        "that signed the coordinator's certificate");
  }
  absl::StatusOr<std::string> pem = ReadWholeFile(tls_ca_file, "--tls-ca");
  if (!pem.ok()) return pem.status();
  // gRPC would accept any text here and fail each handshake later with a vague message.
  if (!absl::StrContains(*pem, "-----BEGIN CERTIFICATE-----")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--tls-ca file \"", tls_ca_file,
                     "\" contains no PEM certificate: pass the CA "
                     "certificate in PEM form (-----BEGIN CERTIFICATE-----)"));
  }
  security.tls_ca_pem = *std::move(pem);
  security.tls_ca_file = tls_ca_file;
  security.tls_server_name = tls_server_name;
  return absl::OkStatus();
}

std::shared_ptr<grpc::Channel> CreateChannel(const std::string& address,
                                             const ChannelSecurity& security) {
  if (security.tls_ca_pem.empty()) {
    return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  }
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = security.tls_ca_pem;
  grpc::ChannelArguments arguments;
  if (!security.tls_server_name.empty()) {
    arguments.SetSslTargetNameOverride(security.tls_server_name);
  }
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(tls), arguments);
}

}  // namespace

absl::StatusOr<ChannelSecurity> LoadChannelSecurity(const std::string& token_file,
                                                    const char* environment_token,
                                                    const std::string& tls_ca_file,
                                                    const std::string& tls_server_name) {
  ChannelSecurity security;
  if (absl::Status status = LoadToken(token_file, environment_token, security); !status.ok()) {
    return status;
  }
  if (absl::Status status = LoadTlsSettings(tls_ca_file, tls_server_name, security); !status.ok()) {
    return status;
  }
  return security;
}

CoordinatorClient::CoordinatorClient(std::string address, std::chrono::milliseconds timeout,
                                     ChannelSecurity security)
    : address_(std::move(address)),
      timeout_(timeout),
      security_(std::move(security)),
      stub_(v1::SweepService::NewStub(CreateChannel(address_, security_))) {}

void CoordinatorClient::Authenticate(grpc::ClientContext& context) const {
  if (!security_.token.empty()) context.AddMetadata("authorization", "Bearer " + security_.token);
}

template <typename Request, typename Response>
absl::StatusOr<Response> CoordinatorClient::Call(UnaryMethod<Request, Response> method,
                                                 const Request& request) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout_);
  context.set_wait_for_ready(false);
  Authenticate(context);
  Response response;
  grpc::Status status = (stub_.get()->*method)(&context, request, &response);
  if (!status.ok()) return ConvertStatus(status);
  return response;
}

absl::Status CoordinatorClient::ConvertStatus(const grpc::Status& status) const {
  const auto code = static_cast<absl::StatusCode>(status.error_code());
  constexpr char kTokenFix[] = "pass the client token with --token-file or SWEEP_CLIENT_TOKEN";
  if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
    // The coordinator's own message is left out because it names the server's flags.
    if (security_.token.empty()) {
      return absl::Status(code,
                          absl::StrCat("coordinator at ", address_,
                                       " requires a client token and none was sent: ", kTokenFix));
    }
    return absl::Status(
        code, absl::StrCat("coordinator at ", address_, " rejected the client token from ",
                           security_.token_source, ": ", kTokenFix));
  }

  std::string detail;
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    detail = status.error_message();
  } else if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    detail = absl::StrCat("no reply within ", timeout_.count() / 1000.0, " s");
  } else {
    return FromGrpcStatus(status);
  }
  // A TLS mismatch between client and coordinator looks like an unreachable coordinator.
  std::string tls_hint =
      security_.tls_ca_pem.empty()
          ? " (and --tls-ca when the coordinator uses TLS)"
          : absl::StrCat(
                ", and check that the coordinator uses TLS with a certificate that "
                "--tls-ca ",
                security_.tls_ca_file, " verifies");
  std::string message = absl::StrCat("cannot reach coordinator at ", address_, " (", detail,
                                     "): start sweep-coordinator or pass --coordinator", tls_hint);
  return absl::Status(code, message);
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
  Authenticate(context);
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
