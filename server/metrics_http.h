#ifndef SWEEP_SERVER_METRICS_HTTP_H_
#define SWEEP_SERVER_METRICS_HTTP_H_

// An HTTP endpoint that serves a MetricsRegistry at GET /metrics for Prometheus to scrape.
// It runs cpp-httplib's server on a thread of its own.
//
// Usage:
//   absl::StatusOr<ListenAddress> address = ParseListenAddress("127.0.0.1:9464");
//   MetricsHttpServer server(registry);
//   absl::Status started = server.Start(*address);
//   ...
//   server.Stop();

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/metrics.h"

namespace httplib {
class Server;
}

namespace sweep::server {

struct ListenAddress {
  // Host name or IP address. An IPv6 address has no brackets.
  std::string host;
  // TCP port. Port 0 picks a free port.
  int port = 0;
};

// Parses "HOST:PORT", "[IPV6]:PORT" or ":PORT". An empty host means 127.0.0.1, so the
// endpoint binds loopback unless a host is given. Returns INVALID_ARGUMENT for a missing
// colon, a port outside 0..65535 or brackets that do not close.
absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view address);

// Serves GET (and HEAD) /metrics with the registry's text exposition, content type
// kPrometheusContentType. Other paths and methods get 404. When rendering fails, the response
// is 500 with the error message, so the scrape fails rather than showing partial data. Each
// connection carries one request, and a connection that sends nothing is closed after 1 s.
class MetricsHttpServer final {
 public:
  // `registry` must outlive the server.
  explicit MetricsHttpServer(const MetricsRegistry& registry);
  // Stops the server.
  ~MetricsHttpServer();
  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;

  // Binds `address` and starts serving on a new thread. Returns once the server accepts
  // connections. Returns UNAVAILABLE when the address cannot be bound and
  // FAILED_PRECONDITION when the server already runs.
  absl::Status Start(const ListenAddress& address);

  // Port the server is bound to, the chosen one when Start was given port 0; 0 before Start.
  int port() const { return port_; }

  // Closes the listening socket, waits for requests in progress and for connections that
  // have not sent a request yet (up to 1 s), and joins the thread. Does nothing when the
  // server does not run. Not safe to call concurrently with Start.
  void Stop();

 private:
  const MetricsRegistry& registry_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  // Set by the server thread once listening ends, also when it ends with an error.
  std::atomic<bool> listen_returned_{false};
  std::string host_;
  int port_ = 0;
};

}  // namespace sweep::server

#endif  // SWEEP_SERVER_METRICS_HTTP_H_
