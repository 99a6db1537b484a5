// sweep-worker: takes trials from the coordinator, trains them and streams their metrics.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "common/logging.h"
#include "spdlog/spdlog.h"
#include "worker/agent.h"
#include "worker/fused_trainer.h"
#include "worker/trainer.h"

namespace {

// Trials fused per group on a CUDA device when --fuse-trials is auto. An estimate: no
// GPU run has measured the best group size yet.
constexpr int32_t kAutoFusedTrialsCuda = 16;

}  // namespace

int main(int argc, char** argv) {
  // SIGINT and SIGTERM are blocked in every thread and taken by the signal thread below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  sweep::worker::AgentOptions agent_options;
  sweep::worker::TorchTrainerOptions torch_options;
  sweep::worker::SimulatedTrainerOptions simulated_options;
  std::string log_level = "info";
  std::string log_format = "text";
  bool simulated = false;
  double acquire_wait_seconds = 10;

  CLI::App app{"sweep-worker: trains the trials the coordinator leases to it"};
  app.add_option("--coordinator", agent_options.coordinator, "coordinator host:port")
      ->envname("SWEEP_COORDINATOR")
      ->capture_default_str();
  app.add_option("--host", agent_options.host, "host name to report; default: this host's name");
  app.add_option("--data-dir", torch_options.data_dir,
                 "directory with the gzipped Fashion-MNIST IDX files")
      ->capture_default_str();
  app.add_option("--device", torch_options.device,
                 "auto (CUDA when LibTorch sees a GPU, else CPU), cpu, cuda or cuda:N")
      ->capture_default_str();
  app.add_option("--max-train-images", torch_options.max_train_images,
                 "use only the first N of the 60,000 training images, validation included; 0 "
                 "uses all")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-test-images", torch_options.max_test_images,
                 "use only the first N of the 10,000 test images; 0 uses all")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--validation-images", torch_options.validation_images,
                 "images held out of the end of the training set for validation")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--threads", torch_options.threads,
                 "CPU threads for LibTorch; 0 uses every hardware thread")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--log-every-steps", torch_options.log_every_steps,
                 "report the training loss every N optimizer steps; 0 turns it off")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--artifacts-dir", torch_options.artifacts_dir,
                 "directory for best-validation checkpoints; empty writes none");
  app.add_option("--acquire-wait-seconds", acquire_wait_seconds,
                 "seconds one request for a trial waits on the coordinator")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 30.0));
  app.add_option("--max-trials", agent_options.max_trials,
                 "exit after this many trials; 0 runs until SIGTERM")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  std::string fuse_trials = "auto";
  app.add_option("--fuse-trials", fuse_trials,
                 "most trials (1 to 256) to lease at once and train as one fused model: 1 "
                 "turns fusion off; auto uses " +
                     std::to_string(kAutoFusedTrialsCuda) +
                     " on a CUDA device and 1 on the CPU, where fusion is slower")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  app.add_option("--log-format", log_format, "text or json (one object per line)")
      ->capture_default_str();
  app.add_flag("--simulated-trainer", simulated,
               "train nothing: emit made-up metrics on a schedule (a test double for "
               "orchestration tests; never use it for real sweeps)");
  app.add_option("--simulated-step-ms", simulated_options.step_ms,
                 "with --simulated-trainer: milliseconds per training step")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--simulated-steps-per-epoch", simulated_options.steps_per_epoch,
                 "with --simulated-trainer: steps per epoch")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  std::string token_file;
  std::string tls_ca;
  app.add_option("--token-file", token_file,
                 "file with the worker token; default: $SWEEP_WORKER_TOKEN");
  app.add_option("--tls-ca", tls_ca,
                 "PEM CA certificate; connects with TLS and verifies the coordinator");
  CLI11_PARSE(app, argc, argv);
  agent_options.acquire_wait =
      std::chrono::milliseconds(static_cast<int64_t>(acquire_wait_seconds * 1000));

  if (absl::Status status = sweep::SetUpLogging(log_level, log_format, "worker"); !status.ok()) {
    std::cerr << "sweep-worker: " << status.message() << "\n";
    return 2;
  }

  if (!token_file.empty()) {
    std::ifstream file(token_file);
    if (!file || !std::getline(file, agent_options.token) || agent_options.token.empty()) {
      spdlog::critical("cannot read a token from --token-file {}", token_file);
      return 2;
    }
  } else if (const char* token = std::getenv("SWEEP_WORKER_TOKEN"); token != nullptr) {
    agent_options.token = token;
  }
  if (!tls_ca.empty()) {
    std::ifstream file(tls_ca, std::ios::binary);
    agent_options.tls_ca_pem.assign(std::istreambuf_iterator<char>(file),
                                    std::istreambuf_iterator<char>());
    if (agent_options.tls_ca_pem.empty()) {
      spdlog::critical("cannot read the CA certificate --tls-ca {}", tls_ca);
      return 2;
    }
  }

  std::unique_ptr<sweep::worker::Trainer> trainer;
  if (simulated) {
    spdlog::warn("using the simulated trainer: trials train nothing and report made-up metrics");
    trainer = sweep::worker::MakeSimulatedTrainer(simulated_options);
  } else {
    absl::StatusOr<std::unique_ptr<sweep::worker::Trainer>> torch_trainer =
        sweep::worker::MakeTorchTrainer(torch_options);
    if (!torch_trainer.ok()) {
      spdlog::critical("cannot create the trainer: {}", torch_trainer.status().message());
      return 1;
    }
    trainer = *std::move(torch_trainer);
  }

  std::unique_ptr<sweep::worker::FusedTrainer> fused_trainer;
  if (fuse_trials == "auto") {
    agent_options.max_fused_trials =
        !simulated && trainer->device().starts_with("cuda") ? kAutoFusedTrialsCuda : 1;
  } else if (!absl::SimpleAtoi(fuse_trials, &agent_options.max_fused_trials) ||
             agent_options.max_fused_trials < 1 || agent_options.max_fused_trials > 256) {
    spdlog::critical("--fuse-trials {} is invalid; pass auto or a number from 1 to 256",
                     fuse_trials);
    return 2;
  }
  if (agent_options.max_fused_trials > 1 && simulated) {
    spdlog::critical(
        "--fuse-trials {} needs the LibTorch trainer; drop --simulated-trainer or "
        "pass --fuse-trials 1",
        fuse_trials);
    return 2;
  }
  if (agent_options.max_fused_trials > 1) {
    absl::StatusOr<std::unique_ptr<sweep::worker::FusedTrainer>> made =
        sweep::worker::MakeFusedTrainer(torch_options);
    if (!made.ok()) {
      spdlog::critical("cannot create the fused trainer: {}", made.status().message());
      return 1;
    }
    fused_trainer = *std::move(made);
    spdlog::info("fusing up to {} trials of one architecture per group",
                 agent_options.max_fused_trials);
  }

  sweep::worker::Agent agent(agent_options, *trainer, fused_trainer.get());
  std::atomic<bool> run_ended{false};
  std::thread signal_thread([&agent, &signals, &run_ended] {
    int signal_number = 0;
    sigwait(&signals, &signal_number);
    if (!run_ended.load()) {
      spdlog::info("received signal {}; stopping after the current training step", signal_number);
    }
    agent.Stop();
  });
  const int exit_code = agent.Run();
  // Wakes the signal thread when Run ended on its own.
  run_ended.store(true);
  pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  return exit_code;
}
