#include "server/metrics_http.h"

#include <httplib.h>
#include <sys/socket.h>

#include <charconv>
#include <chrono>
#include <utility>

#include "common/logging.h"
#include "spdlog/spdlog.h"

namespace sweep::server {
namespace {

// Scrapes arrive one at a time, so a small pool suffices. httplib's default is at least 8.
constexpr size_t kHandlerThreads = 2;

std::string FormatAddress(const std::string& host, int port) {
  const bool ipv6 = host.find(':') != std::string::npos;
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// Creates a server that routes GET /metrics to `registry` and is configured as the class
// comment of MetricsHttpServer describes.
std::unique_ptr<httplib::Server> CreateHttpServer(const MetricsRegistry& registry) {
  auto server = std::make_unique<httplib::Server>();
  server->new_task_queue = [] { return new httplib::ThreadPool(kHandlerThreads); };
  // httplib 0.11 sets SO_REUSEPORT by default, which lets a second process bind the same port
  // and take a share of the scrapes. SO_REUSEADDR alone still allows a quick restart while old
  // connections are in TIME_WAIT, but fails to bind a port that another socket listens on.
  server->set_socket_options([](socket_t socket) {
    const int enable = 1;
    setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &enable, sizeof(enable));
  });
  // Stopping waits for every open connection, and httplib waits up to the keep-alive timeout
  // (5 s by default) for a connection's next request. One request per connection and a 1 s
  // timeout keep Stop() under about a second. Scrapes come seconds apart, so they gain nothing
  // from keeping a connection open.
  server->set_keep_alive_max_count(1);
  server->set_keep_alive_timeout(1);

  server->Get("/metrics", [&registry](const httplib::Request&, httplib::Response& response) {
    absl::StatusOr<std::string> text = registry.Render();
    if (!text.ok()) {
      spdlog::warn("rendering metrics failed: {}", text.status().message());
      response.status = 500;
      response.set_content(std::string(text.status().message()) + "\n", "text/plain");
      return;
    }
    response.set_content(*std::move(text), std::string(kPrometheusContentType));
  });
  server->set_error_handler([](const httplib::Request&, httplib::Response& response) {
    if (response.status == 404) {
      response.set_content("not found; metrics are at GET /metrics\n", "text/plain");
    }
  });
  return server;
}

}  // namespace

absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view address) {
  ListenAddress parsed;
  std::string_view port_text;
  if (!address.empty() && address.front() == '[') {
    const size_t close = address.find(']');
    if (close == std::string_view::npos || address.substr(close + 1, 1) != ":") {
      return absl::InvalidArgumentError("listen address \"" + std::string(address) +
                                        "\" is invalid; write an IPv6 address as [::1]:PORT");
    }
    parsed.host = std::string(address.substr(1, close - 1));
    port_text = address.substr(close + 2);
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string_view::npos) {
      return absl::InvalidArgumentError("listen address \"" + std::string(address) +
                                        "\" has no port; write HOST:PORT or :PORT");
    }
    parsed.host = std::string(address.substr(0, colon));
    port_text = address.substr(colon + 1);
  }
  if (parsed.host.empty()) parsed.host = "127.0.0.1";

  const char* end = port_text.data() + port_text.size();
  const std::from_chars_result result = std::from_chars(port_text.data(), end, parsed.port);
  if (port_text.empty() || result.ec != std::errc() || result.ptr != end || parsed.port < 0 ||
      parsed.port > 65535) {
    return absl::InvalidArgumentError("listen address \"" + std::string(address) +
                                      "\" has an invalid port; use 0 to 65535");
  }
  return parsed;
}

MetricsHttpServer::MetricsHttpServer(const MetricsRegistry& registry) : registry_(registry) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

absl::Status MetricsHttpServer::Start(const ListenAddress& address) {
  if (server_ != nullptr) {
    return absl::FailedPreconditionError("the metrics endpoint already listens on " +
                                         FormatAddress(host_, port_));
  }
  std::unique_ptr<httplib::Server> server = CreateHttpServer(registry_);

  int port = address.port;
  if (port == 0) {
    port = server->bind_to_any_port(address.host);
  } else if (!server->bind_to_port(address.host, port)) {
    port = -1;
  }
  if (port < 0) {
    return absl::UnavailableError("the metrics endpoint cannot listen on " +
                                  FormatAddress(address.host, address.port) +
                                  "; pass a free local HOST:PORT");
  }

  server_ = std::move(server);
  host_ = address.host;
  port_ = port;
  listen_returned_ = false;
  thread_ = std::thread([this] {
    if (!server_->listen_after_bind()) {
      spdlog::error("the metrics endpoint on {} stopped accepting connections",
                    FormatAddress(host_, port_));
    }
    listen_returned_ = true;
  });

  // NOTE: httplib 0.11 has no call that waits for the listener to start, and its stop() does
  // nothing before is_running() turns true, so Stop() could otherwise miss the server and hang
  // in join(). Polling is the only way to see that flag, which turns true as soon as the thread
  // runs.
  while (!server_->is_running() && !listen_returned_) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  spdlog::info("serving metrics at http://{}/metrics", FormatAddress(host_, port_));
  return absl::OkStatus();
}

void MetricsHttpServer::Stop() {
  if (server_ == nullptr) return;

  server_->stop();
  thread_.join();
  server_.reset();
  spdlog::info("stopped serving metrics on {}", FormatAddress(host_, port_));
  port_ = 0;
}

}  // namespace sweep::server
