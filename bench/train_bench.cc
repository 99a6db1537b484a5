// Measures the training speed of the worker's LibTorch trainer: one or more concurrent
// trials, each run by its own trainer on its own thread. Prints one line of key=value
// pairs per trial and, for several trials, their sum. bench/train_bench.sh runs it.

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdint>
#include <cstdio>
#include <latch>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/train_bench_peak.h"
#include "worker/trainer.h"

namespace {

using sweep::worker::TrainingObserver;

// Keeps the last value of each epoch metric and optionally stops after the first step.
class RecordingObserver final : public TrainingObserver {
 public:
  explicit RecordingObserver(bool stop_after_first_step) : stop_(stop_after_first_step) {}

  void OnMetric(int32_t /*epoch*/, int64_t /*step*/, std::string_view name, double value) override {
    if (name == "images_per_second") images_per_second = value;
    if (name == "epoch_seconds") epoch_seconds = value;
  }
  bool StopRequested() override { return stop_; }

  double images_per_second = 0;
  double epoch_seconds = 0;

 private:
  const bool stop_;
};

struct BenchOptions {
  sweep::worker::TorchTrainerOptions trainer;
  sweep::Hyperparameters hyperparameters;
  int trials = 1;
  uint64_t seed = 1;
};

struct TrialOutcome {
  double images_per_second = 0;
  double test_accuracy = 0;
  std::string error;
};

// Creates a trainer, warms it up with a trial stopped after one step (which loads the
// data), waits for the other threads, then trains the measured trial.
TrialOutcome RunTrial(const BenchOptions& options, int index, std::latch& warmed_up) {
  TrialOutcome outcome;
  absl::StatusOr<std::unique_ptr<sweep::worker::Trainer>> trainer =
      sweep::worker::MakeTorchTrainer(options.trainer);
  if (!trainer.ok()) {
    outcome.error = trainer.status().ToString();
    warmed_up.count_down();
    return outcome;
  }
  sweep::worker::TrialSpec trial{.trial_id = index,
                                 .attempt = 0,
                                 .hyperparameters = options.hyperparameters,
                                 .seed = options.seed + static_cast<uint64_t>(index)};
  RecordingObserver warm_up_observer(/*stop_after_first_step=*/true);
  absl::StatusOr<sweep::worker::TrainingResult> warm_up =
      (*trainer)->Train(trial, warm_up_observer);
  warmed_up.arrive_and_wait();
  if (!warm_up.ok()) {
    outcome.error = warm_up.status().ToString();
    return outcome;
  }

  RecordingObserver observer(/*stop_after_first_step=*/false);
  absl::StatusOr<sweep::worker::TrainingResult> result = (*trainer)->Train(trial, observer);
  if (!result.ok()) {
    outcome.error = result.status().ToString();
    return outcome;
  }
  outcome.images_per_second = observer.images_per_second;
  for (const auto& [name, value] : result->final_metrics) {
    if (name == "test_accuracy") outcome.test_accuracy = value;
  }
  return outcome;
}

}  // namespace

int main(int argc, char** argv) {
  BenchOptions options;
  options.trainer.max_test_images = 1000;
  options.trainer.log_every_steps = 0;
  options.hyperparameters.num_epochs = 1;
  int64_t train_images = 10000;
  bool measure_peak = false;

  CLI::App app("Measures the training speed of the worker's LibTorch trainer.");
  app.add_option("--data-dir", options.trainer.data_dir, "Directory of the Fashion-MNIST files");
  app.add_option("--device", options.trainer.device, "auto, cpu, cuda or cuda:N");
  app.add_option("--threads", options.trainer.threads,
                 "LibTorch CPU threads per process; 0 uses every hardware thread");
  app.add_option("--train-images", train_images,
                 "Training images per epoch (validation images come after them); 0 trains on "
                 "all 55,000 of the default split");
  app.add_option("--validation-images", options.trainer.validation_images,
                 "Validation images held out after the training images");
  app.add_option("--test-images", options.trainer.max_test_images,
                 "Test images evaluated at the end; 0 evaluates all 10,000");
  app.add_option("--epochs", options.hyperparameters.num_epochs, "Epochs per trial");
  app.add_option("--batch-size", options.hyperparameters.batch_size, "Images per training step");
  app.add_option("--conv1-depth", options.hyperparameters.conv1_depth, "First conv filters");
  app.add_option("--conv2-depth", options.hyperparameters.conv2_depth, "Second conv filters");
  app.add_option("--dense-units", options.hyperparameters.dense_layer_units, "Dense layer units");
  app.add_option("--trials", options.trials,
                 "Concurrent trials, each with its own trainer and thread, on the same device")
      ->check(CLI::PositiveNumber);
  app.add_option("--seed", options.seed, "Seed of the first trial; trial i uses seed + i");
  app.add_flag("--measure-peak", measure_peak,
               "Measure the CPU's peak float32 FLOP rate with a fused multiply-add loop on "
               "--threads threads instead of training");
  CLI11_PARSE(app, argc, argv);

  if (measure_peak) {
    const int threads = options.trainer.threads > 0
                            ? options.trainer.threads
                            : static_cast<int>(std::thread::hardware_concurrency());
    std::printf("peak_gflops=%.1f threads=%d\n", sweep::bench::MeasurePeakGflops(threads), threads);
    return 0;
  }

  if (train_images > 0) {
    options.trainer.max_train_images = train_images + options.trainer.validation_images;
  }
  spdlog::set_level(spdlog::level::warn);

  std::latch warmed_up(options.trials);
  std::vector<TrialOutcome> outcomes(options.trials);
  std::vector<std::thread> threads;
  for (int i = 0; i < options.trials; ++i) {
    threads.emplace_back([&, i] { outcomes[i] = RunTrial(options, i, warmed_up); });
  }
  for (std::thread& thread : threads) thread.join();

  double total_images_per_second = 0;
  int exit_code = 0;
  for (int i = 0; i < options.trials; ++i) {
    if (!outcomes[i].error.empty()) {
      std::fprintf(stderr, "train_bench: trial %d failed: %s\n", i, outcomes[i].error.c_str());
      exit_code = 1;
      continue;
    }
    total_images_per_second += outcomes[i].images_per_second;
    std::printf("trial=%d images_per_second=%.1f test_accuracy=%.4f\n", i,
                outcomes[i].images_per_second, outcomes[i].test_accuracy);
  }
  if (options.trials > 1) {
    std::printf("trials=%d total_images_per_second=%.1f\n", options.trials,
                total_images_per_second);
  }
  return exit_code;
}
