#include "server/auth.h"

#include "spdlog/spdlog.h"

namespace sweep::server {

Authenticator::Authenticator(std::string client_token, std::string worker_token)
    : client_token_(std::move(client_token)), worker_token_(std::move(worker_token)) {}

bool Authenticator::enabled(Role role) const {
  return !(role == Role::kClient ? client_token_ : worker_token_).empty();
}

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  const size_t length = std::max(a.size(), b.size());
  for (size_t i = 0; i < length; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    difference |= x ^ y;
  }
  return difference == 0;
}

grpc::Status Authenticator::Check(const grpc::ServerContext& context, Role role) const {
  const std::string& expected = role == Role::kClient ? client_token_ : worker_token_;
  if (expected.empty()) return grpc::Status::OK;
  const char* role_name = role == Role::kClient ? "client" : "worker";
  const auto& metadata = context.client_metadata();
  const auto header = metadata.find("authorization");
  std::string problem;
  if (header == metadata.end()) {
    problem = "missing";
  } else {
    const std::string value(header->second.data(), header->second.size());
    constexpr std::string_view kPrefix = "Bearer ";
    const bool bearer = value.rfind(kPrefix, 0) == 0;
    if (bearer && ConstantTimeEquals(value.substr(kPrefix.size()), expected)) {
      return grpc::Status::OK;
    }
    problem = bearer ? "wrong" : "malformed";
  }
  spdlog::warn("rejected a call from {}: {} {} token", context.peer(), problem, role_name);
  return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                      std::string(role_name) + " token is " + problem + "; pass the " + role_name +
                          " token (--token-file or SWEEP_" +
                          (role == Role::kClient ? "CLIENT" : "WORKER") + "_TOKEN)");
}

}  // namespace sweep::server
