// sweep-coordinator: stores sweeps in SQLite and leases their trials to workers over gRPC.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "common/logging.h"
#include "server/coordinator.h"
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
};

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
  sweep::server::Coordinator coordinator(**store, options);
  sweep::server::SweepServiceImpl sweep_service(coordinator);
  sweep::server::WorkerServiceImpl worker_service(coordinator);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(flags.listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&sweep_service);
  builder.RegisterService(&worker_service);
  // Workers ping idle connections every 30 s; allow that without a GOAWAY.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 20'000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    spdlog::critical("cannot listen on {}; pass a free host:port with --listen", flags.listen);
    return 1;
  }
  if (!IsLoopback(flags.listen)) {
    spdlog::warn("listening on {} beyond loopback without authentication", flags.listen);
  }
  coordinator.Start();
  const std::string host = flags.listen.substr(0, flags.listen.rfind(':'));
  spdlog::info("listening on {}:{} with database {} (schema version {})", host, port, flags.db,
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
