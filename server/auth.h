#ifndef SWEEP_SERVER_AUTH_H_
#define SWEEP_SERVER_AUTH_H_

#include <grpcpp/server_context.h>

#include <string>

namespace sweep::server {

enum class Role { kClient, kWorker };

// Checks the bearer token of each call against the token of the role the called service
// serves. Clients and workers have separate tokens, so neither can act as the other. A role
// without a token accepts every call.
class Authenticator {
 public:
  Authenticator() = default;
  Authenticator(std::string client_token, std::string worker_token);

  // Returns OK, or UNAUTHENTICATED for a missing or wrong "authorization: Bearer TOKEN"
  // header. Logs each rejection with the method and peer, never the token.
  grpc::Status Check(const grpc::ServerContext& context, Role role) const;

  bool enabled(Role role) const;

 private:
  std::string client_token_;
  std::string worker_token_;
};

// Compares two strings in time that depends only on their lengths.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

}  // namespace sweep::server

#endif  // SWEEP_SERVER_AUTH_H_
