// Measures the aggregate training throughput of K trials of one architecture, trained
// either as one fused group (FusedTrainer) or one after another (the unfused Trainer).
// Prints one line of key=value pairs. bench/fused_bench.sh runs it for several K.
//
// Every trial runs --warmup-steps steps, which are not timed, then --steps timed steps,
// and stops. The trainers read the loss back from the device every --warmup-steps steps,
// so on CUDA the timed interval starts and ends right after the device finished its work.

#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/fused_trainer.h"
#include "worker/trainer.h"

namespace {

using Clock = std::chrono::steady_clock;
using sweep::worker::TrainingObserver;
using sweep::worker::TrainingOutcome;
using sweep::worker::TrainingResult;
using sweep::worker::TrialSpec;

// Times the steps after the warm-up and requests a stop when they are done.
class StepTimer final : public TrainingObserver {
 public:
  StepTimer(int64_t warmup_steps, int64_t timed_steps)
      : warmup_steps_(warmup_steps), last_step_(warmup_steps + timed_steps) {}

  void OnMetric(int32_t /*epoch*/, int64_t /*step*/, std::string_view /*name*/,
                double /*value*/) override {}

  bool StopRequested() override {
    ++polls_;
    if (polls_ == warmup_steps_) start_ = Clock::now();
    if (polls_ < last_step_) return false;
    end_ = Clock::now();
    return true;
  }

  // Seconds of the timed steps; 0 until they are done.
  double seconds() const {
    return polls_ < last_step_ ? 0 : std::chrono::duration<double>(end_ - start_).count();
  }

 private:
  const int64_t warmup_steps_;
  const int64_t last_step_;
  int64_t polls_ = 0;
  Clock::time_point start_;
  Clock::time_point end_;
};

struct BenchOptions {
  sweep::worker::TorchTrainerOptions trainer;
  sweep::Hyperparameters hyperparameters;
  std::string mode = "fused";
  int trials = 1;
  int64_t warmup_steps = 1;
  int64_t steps = 4;
  uint64_t seed = 1;
};

std::vector<TrialSpec> MakeTrials(const BenchOptions& options) {
  std::vector<TrialSpec> trials;
  for (int i = 0; i < options.trials; ++i) {
    trials.push_back(TrialSpec{.trial_id = i,
                               .attempt = 0,
                               .hyperparameters = options.hyperparameters,
                               .seed = options.seed + static_cast<uint64_t>(i)});
  }
  return trials;
}

// Returns an error message when a trial failed or did not stop as the timer requested.
std::string CheckResult(const absl::StatusOr<TrainingResult>& result) {
  if (!result.ok()) return result.status().ToString();
  if (result->outcome != TrainingOutcome::kStopped) {
    return "a trial ended before its timed steps were done: " + result->message;
  }
  return "";
}

// Trains the trials as one group, after a one-step group that loads the data. Returns the
// seconds of the timed steps, or a negative number after printing an error.
double RunFused(const BenchOptions& options) {
  absl::StatusOr<std::unique_ptr<sweep::worker::FusedTrainer>> trainer =
      sweep::worker::MakeFusedTrainer(options.trainer);
  if (!trainer.ok()) {
    std::fprintf(stderr, "fused_bench: %s\n", trainer.status().ToString().c_str());
    return -1;
  }
  StepTimer warm_up(/*warmup_steps=*/0, /*timed_steps=*/1);
  const std::vector<TrialSpec> trials = MakeTrials(options);
  const std::vector<absl::StatusOr<TrainingResult>> warm_up_results =
      (*trainer)->TrainGroup({trials.front()}, {&warm_up});
  if (const std::string error = CheckResult(warm_up_results.front()); !error.empty()) {
    std::fprintf(stderr, "fused_bench: warm-up: %s\n", error.c_str());
    return -1;
  }

  std::vector<std::unique_ptr<StepTimer>> timers;
  std::vector<TrainingObserver*> observers;
  for (size_t i = 0; i < trials.size(); ++i) {
    timers.push_back(std::make_unique<StepTimer>(options.warmup_steps, options.steps));
    observers.push_back(timers.back().get());
  }
  const std::vector<absl::StatusOr<TrainingResult>> results =
      (*trainer)->TrainGroup(trials, observers);
  for (const absl::StatusOr<TrainingResult>& result : results) {
    if (const std::string error = CheckResult(result); !error.empty()) {
      std::fprintf(stderr, "fused_bench: %s\n", error.c_str());
      return -1;
    }
  }
  // All trials step together, so the first trial's timer times the group.
  return timers.front()->seconds();
}

// Trains the trials one after another with one unfused trainer, after a one-step trial
// that loads the data. Returns the sum of their timed seconds, or a negative number after
// printing an error.
double RunUnfused(const BenchOptions& options) {
  absl::StatusOr<std::unique_ptr<sweep::worker::Trainer>> trainer =
      sweep::worker::MakeTorchTrainer(options.trainer);
  if (!trainer.ok()) {
    std::fprintf(stderr, "fused_bench: %s\n", trainer.status().ToString().c_str());
    return -1;
  }
  const std::vector<TrialSpec> trials = MakeTrials(options);
  StepTimer warm_up(/*warmup_steps=*/0, /*timed_steps=*/1);
  const absl::StatusOr<TrainingResult> warm_up_result = (*trainer)->Train(trials.front(), warm_up);
  if (const std::string error = CheckResult(warm_up_result); !error.empty()) {
    std::fprintf(stderr, "fused_bench: warm-up: %s\n", error.c_str());
    return -1;
  }

  double seconds = 0;
  for (const TrialSpec& trial : trials) {
    StepTimer timer(options.warmup_steps, options.steps);
    const absl::StatusOr<TrainingResult> result = (*trainer)->Train(trial, timer);
    if (const std::string error = CheckResult(result); !error.empty()) {
      std::fprintf(stderr, "fused_bench: %s\n", error.c_str());
      return -1;
    }
    seconds += timer.seconds();
  }
  return seconds;
}

}  // namespace

int main(int argc, char** argv) {
  BenchOptions options;
  options.trainer.max_test_images = 1000;
  options.hyperparameters.num_epochs = 1;
  int64_t train_images = 10000;

  CLI::App app(
      "Measures the aggregate training images/s of K trials trained as one fused group or "
      "one after another.");
  app.add_option("--mode", options.mode, "fused (one group) or unfused (one trial at a time)")
      ->check(CLI::IsMember({"fused", "unfused"}));
  app.add_option("--trials", options.trials, "Number of trials K")->check(CLI::PositiveNumber);
  app.add_option("--data-dir", options.trainer.data_dir, "Directory of the Fashion-MNIST files");
  app.add_option("--device", options.trainer.device, "auto, cpu, cuda or cuda:N");
  app.add_option("--threads", options.trainer.threads,
                 "LibTorch CPU threads; 0 uses every hardware thread");
  app.add_option("--train-images", train_images,
                 "Training images (validation images come after them); the timed steps must "
                 "fit in one epoch");
  app.add_option("--warmup-steps", options.warmup_steps,
                 "Untimed steps per trial before the timed ones; also the interval of the "
                 "trainers' loss read-back")
      ->check(CLI::PositiveNumber);
  app.add_option("--steps", options.steps, "Timed steps per trial; a multiple of --warmup-steps")
      ->check(CLI::PositiveNumber);
  app.add_option("--batch-size", options.hyperparameters.batch_size, "Images per step per trial");
  app.add_option("--conv1-depth", options.hyperparameters.conv1_depth, "First conv filters");
  app.add_option("--conv2-depth", options.hyperparameters.conv2_depth, "Second conv filters");
  app.add_option("--dense-units", options.hyperparameters.dense_layer_units, "Dense layer units");
  app.add_option("--seed", options.seed, "Seed of the first trial; trial i uses seed + i");
  CLI11_PARSE(app, argc, argv);

  if (options.steps % options.warmup_steps != 0) {
    std::fprintf(stderr, "fused_bench: --steps %lld is not a multiple of --warmup-steps %lld\n",
                 static_cast<long long>(options.steps),
                 static_cast<long long>(options.warmup_steps));
    return 2;
  }
  if ((options.warmup_steps + options.steps) * options.hyperparameters.batch_size > train_images) {
    std::fprintf(stderr,
                 "fused_bench: %lld steps of %lld images do not fit in one epoch of %lld "
                 "training images; raise --train-images or lower --steps\n",
                 static_cast<long long>(options.warmup_steps + options.steps),
                 static_cast<long long>(options.hyperparameters.batch_size),
                 static_cast<long long>(train_images));
    return 2;
  }
  // The timed interval then starts and ends right after a loss read-back.
  options.trainer.log_every_steps = static_cast<int>(options.warmup_steps);
  options.trainer.max_train_images = train_images + options.trainer.validation_images;
  spdlog::set_level(spdlog::level::warn);

  const double seconds = options.mode == "fused" ? RunFused(options) : RunUnfused(options);
  if (seconds <= 0) return 1;
  const double images = static_cast<double>(options.trials) * static_cast<double>(options.steps) *
                        static_cast<double>(options.hyperparameters.batch_size);
  std::printf("mode=%s trials=%d steps=%lld images=%.0f seconds=%.3f images_per_second=%.1f\n",
              options.mode.c_str(), options.trials, static_cast<long long>(options.steps), images,
              seconds, images / seconds);
  return 0;
}
