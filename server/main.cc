// sweep-coordinator: stores sweeps in SQLite and leases their trials to workers over gRPC.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "common/logging.h"
#include "server/auth.h"
#include "server/coordinator.h"
#include "server/metrics.h"
#include "server/metrics_http.h"
#include "server/service.h"
#include "server/store.h"
#include "spdlog/spdlog.h"

namespace {

struct Flags {
  std::string listen = "127.0.0.1:50051";
  std::string db = "sweep.db";
  std::string log_level = "info";
  std::string log_format = "text";
  std::string port_file;
  double lease_seconds = 30;
  double heartbeat_seconds = 5;
  int max_attempts = 3;
  int64_t max_grid_size = 1'000'000;
  std::string client_token_file;
  std::string worker_token_file;
  std::string tls_cert;
  std::string tls_key;
  std::string logdir;
  std::string metrics_listen;
};

// Reads a whole file, dropping one trailing newline (token files often end with one).
absl::StatusOr<std::string> ReadFile(const std::string& path, bool trim_newline) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return absl::NotFoundError("cannot read \"" + path + "\"");
  std::string content((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  if (trim_newline) {
    while (!content.empty() && (content.back() == '\n' || content.back() == '\r')) {
      content.pop_back();
    }
  }
  return content;
}

// Takes a token from a file flag, else from an environment variable; empty means none.
absl::StatusOr<std::string> LoadToken(const std::string& file, const char* variable) {
  if (!file.empty()) {
    absl::StatusOr<std::string> token = ReadFile(file, true);
    if (token.ok() && token->empty()) {
      return absl::InvalidArgumentError("token file \"" + file + "\" is empty");
    }
    return token;
  }
  const char* value = std::getenv(variable);
  return std::string(value == nullptr ? "" : value);
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeCredentials(const Flags& flags) {
  if (flags.tls_cert.empty() && flags.tls_key.empty()) return grpc::InsecureServerCredentials();
  if (flags.tls_cert.empty() || flags.tls_key.empty()) {
    return absl::InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
  }
  absl::StatusOr<std::string> cert = ReadFile(flags.tls_cert, false);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile(flags.tls_key, false);
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options;
  options.pem_key_cert_pairs.push_back({*key, *cert});
  return grpc::SslServerCredentials(options);
}

bool IsLoopback(const std::string& address) {
  return address.rfind("127.", 0) == 0 || address.rfind("localhost:", 0) == 0 ||
         address.rfind("[::1]:", 0) == 0;
}

int Run(const Flags& flags) {
  absl::StatusOr<std::unique_ptr<sweep::server::Store>> store =
      sweep::server::Store::Open(flags.db);
  if (!store.ok()) {
    spdlog::critical("cannot open database {}: {}", flags.db, store.status().message());
    return 1;
  }
  sweep::server::CoordinatorOptions options;
  options.lease_ms = static_cast<int64_t>(flags.lease_seconds * 1000);
  options.heartbeat_ms = static_cast<int64_t>(flags.heartbeat_seconds * 1000);
  options.max_attempts = flags.max_attempts;
  options.max_grid_size = flags.max_grid_size;
  options.expiry_check_ms = std::clamp<int64_t>(options.lease_ms / 4, 50, 1000);
  absl::StatusOr<std::string> client_token =
      LoadToken(flags.client_token_file, "SWEEP_CLIENT_TOKEN");
  absl::StatusOr<std::string> worker_token =
      LoadToken(flags.worker_token_file, "SWEEP_WORKER_TOKEN");
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = MakeCredentials(flags);
  for (const absl::Status& status :
       {client_token.status(), worker_token.status(), credentials.status()}) {
    if (!status.ok()) {
      spdlog::critical("invalid security settings: {}", status.message());
      return 2;
    }
  }
  const sweep::server::Authenticator authenticator(*client_token, *worker_token);

  std::unique_ptr<sweep::server::TensorBoardWriter> tensorboard;
  if (!flags.logdir.empty()) {
    absl::StatusOr<std::unique_ptr<sweep::server::TensorBoardWriter>> writer =
        sweep::server::TensorBoardWriter::Create(flags.logdir);
    if (!writer.ok()) {
      spdlog::critical("cannot write TensorBoard files to --logdir {}: {}", flags.logdir,
                       writer.status().message());
      return 1;
    }
    tensorboard = *std::move(writer);
    spdlog::info("writing TensorBoard event files to {}", flags.logdir);
  }
  sweep::server::MetricsRegistry registry;
  sweep::server::CoordinatorMetrics metrics(registry);
  sweep::server::AddProcessMetrics(registry);
  sweep::server::AddStoreGauges(
      registry, [&store] { return (*store)->CountTrialsByState(); },
      [&store, &options] {
        return (*store)->CountActiveWorkers(sweep::server::NowUnixMs() - options.lease_ms);
      });
  sweep::server::MetricsHttpServer metrics_server(registry);
  if (!flags.metrics_listen.empty()) {
    absl::StatusOr<sweep::server::ListenAddress> address =
        sweep::server::ParseListenAddress(flags.metrics_listen);
    absl::Status started = address.ok() ? metrics_server.Start(*address) : address.status();
    if (!started.ok()) {
      spdlog::critical("cannot serve metrics on --metrics-listen {}: {}", flags.metrics_listen,
                       started.message());
      return 1;
    }
    spdlog::info("serving Prometheus metrics on http://{}:{}/metrics", address->host,
                 metrics_server.port());
  }
  sweep::server::Coordinator coordinator(**store, options, tensorboard.get(), &metrics);
  sweep::server::SweepServiceImpl sweep_service(coordinator, authenticator);
  sweep::server::WorkerServiceImpl worker_service(coordinator, authenticator);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(flags.listen, *credentials, &port);
  builder.RegisterService(&sweep_service);
  builder.RegisterService(&worker_service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(sweep::server::MakeRpcErrorInterceptorFactory(metrics.rpc_errors));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  // Workers ping idle connections every 30 s; allow that without a GOAWAY.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 20'000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    spdlog::critical("cannot listen on {}; pass a free host:port with --listen", flags.listen);
    return 1;
  }
  if (!IsLoopback(flags.listen) && !(authenticator.enabled(sweep::server::Role::kClient) &&
                                     authenticator.enabled(sweep::server::Role::kWorker))) {
    spdlog::warn(
        "listening on {} beyond loopback without both a client and a worker token; anyone who "
        "reaches this port can submit sweeps or act as a worker",
        flags.listen);
  }
  coordinator.Start();
  const std::string host = flags.listen.substr(0, flags.listen.rfind(':'));
  spdlog::info("listening on {}:{} ({}) with database {} (schema version {})", host, port,
               flags.tls_cert.empty() ? "plaintext" : "TLS", flags.db,
               sweep::server::kSchemaVersion);
  if (!flags.port_file.empty()) {
    const std::string temporary = flags.port_file + ".tmp";
    std::ofstream(temporary) << port << "\n";
    std::filesystem::rename(temporary, flags.port_file);
  }

  // SIGINT and SIGTERM are blocked in every thread and taken here.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("received signal {}; shutting down", signal_number);
  coordinator.Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server->Wait();
  metrics_server.Stop();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Flags flags;
  CLI::App app{"sweep-coordinator: stores sweeps and leases their trials to workers"};
  app.add_option("--listen", flags.listen, "host:port to listen on; port 0 picks a free port")
      ->capture_default_str();
  app.add_option("--db", flags.db, "SQLite database file, created when missing")
      ->capture_default_str();
  app.add_option("--log-level", flags.log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  app.add_option("--log-format", flags.log_format, "text or json (one object per line)")
      ->capture_default_str();
  app.add_option("--port-file", flags.port_file,
                 "file to write the bound port to once listening (for --listen with port 0)");
  app.add_option("--lease-seconds", flags.lease_seconds,
                 "seconds without a heartbeat after which a trial's lease expires")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  app.add_option("--heartbeat-seconds", flags.heartbeat_seconds,
                 "seconds between worker heartbeats; keep well below --lease-seconds")
      ->capture_default_str()
      ->check(CLI::Range(0.05, 3600.0));
  app.add_option("--max-attempts", flags.max_attempts,
                 "leases a trial gets before an expired lease fails it")
      ->capture_default_str()
      ->check(CLI::Range(1, 100));
  app.add_option("--max-grid-size", flags.max_grid_size, "largest grid_size a sweep may request")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{100'000'000}));
  app.add_option("--client-token-file", flags.client_token_file,
                 "file with the token clients must send; default: $SWEEP_CLIENT_TOKEN, and no "
                 "check when both are empty");
  app.add_option("--worker-token-file", flags.worker_token_file,
                 "file with the token workers must send; default: $SWEEP_WORKER_TOKEN, and no "
                 "check when both are empty");
  app.add_option("--tls-cert", flags.tls_cert,
                 "PEM server certificate; enables TLS with --tls-key");
  app.add_option("--tls-key", flags.tls_key, "PEM private key of --tls-cert");
  app.add_option("--metrics-listen", flags.metrics_listen,
                 "host:port for a Prometheus endpoint at /metrics; empty serves none");
  app.add_option("--logdir", flags.logdir,
                 "directory for TensorBoard event files, one folder per sweep and trial; "
                 "empty writes none");
  CLI11_PARSE(app, argc, argv);

  if (absl::Status status = sweep::SetUpLogging(flags.log_level, flags.log_format, "coordinator");
      !status.ok()) {
    std::cerr << "sweep-coordinator: " << status.message() << "\n";
    return 2;
  }
  if (flags.heartbeat_seconds >= flags.lease_seconds) {
    spdlog::critical("--heartbeat-seconds {} must be below --lease-seconds {}",
                     flags.heartbeat_seconds, flags.lease_seconds);
    return 2;
  }
  return Run(flags);
}
