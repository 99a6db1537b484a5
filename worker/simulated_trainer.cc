// The simulated trainer: a test double that trains nothing. It paces steps with sleeps and
// emits metric curves that depend only on the hyperparameters and the seed, so
// orchestration tests and load benchmarks run without LibTorch work.
#include <chrono>
#include <cmath>
#include <limits>
#include <thread>

#include "worker/trainer.h"

namespace sweep::worker {
namespace {

class SimulatedTrainer final : public Trainer {
 public:
  explicit SimulatedTrainer(SimulatedTrainerOptions options) : options_(options) {}

  std::string device() const override { return "simulated"; }

  absl::StatusOr<TrainingResult> Train(const TrialSpec& trial,
                                       TrainingObserver& observer) override {
    const Hyperparameters& hp = trial.hyperparameters;
    TrainingResult result;
    // Accuracy approaches a ceiling that rises with model size and falls away from a keep
    // probability of 0.6 and from a learning rate of 1e-3 (by decades); the seed adds at
    // most 0.01.
    const double capacity = std::log2(static_cast<double>(hp.conv1_depth * hp.conv2_depth)) / 16.0;
    const double rate_decades = std::abs(std::log10(hp.learning_rate / 1e-3));
    const double ceiling =
        std::clamp(0.85 + 0.05 * capacity - 0.2 * std::abs(hp.keep_prob - 0.6) -
                       0.15 * rate_decades + static_cast<double>(trial.seed % 1000) * 1e-5,
                   0.15, 0.99);
    const bool diverges = hp.learning_rate >= options_.diverge_learning_rate;
    double best_val = -1;
    int32_t best_epoch = 0;
    int64_t step = 0;
    for (int32_t epoch = 1; epoch <= hp.num_epochs; ++epoch) {
      for (int i = 0; i < options_.steps_per_epoch; ++i) {
        ++step;
        if (options_.step_ms > 0) {
          std::this_thread::sleep_for(std::chrono::milliseconds(options_.step_ms));
        }
        const double loss = diverges && step >= 3
                                ? std::numeric_limits<double>::quiet_NaN()
                                : 2.3 * std::exp(-0.1 * static_cast<double>(step));
        observer.OnMetric(epoch, step, "step_train_loss", loss);
        if (std::isnan(loss)) {
          result.outcome = TrainingOutcome::kDiverged;
          result.message = "diverged: train loss is nan at epoch " + std::to_string(epoch) +
                           " step " + std::to_string(step);
          return result;
        }
        if (observer.StopRequested()) {
          result.outcome = TrainingOutcome::kStopped;
          result.message =
              "stopped at epoch " + std::to_string(epoch) + " step " + std::to_string(step);
          return result;
        }
      }
      const double progress = 1.0 - std::exp(-static_cast<double>(epoch) / 2.0);
      const double val_accuracy = 0.1 + (ceiling - 0.1) * progress;
      observer.OnMetric(epoch, step, "train_loss", 2.3 * (1.0 - progress) + 0.2);
      observer.OnMetric(epoch, step, "train_accuracy", val_accuracy + 0.02);
      observer.OnMetric(epoch, step, "val_loss", 2.3 * (1.0 - progress) + 0.25);
      observer.OnMetric(epoch, step, "val_accuracy", val_accuracy);
      if (val_accuracy > best_val) {
        best_val = val_accuracy;
        best_epoch = epoch;
      }
    }
    result.final_metrics = {{"best_val_accuracy", best_val},
                            {"best_epoch", static_cast<double>(best_epoch)},
                            {"test_accuracy", best_val - 0.01},
                            {"test_loss", 0.3}};
    return result;
  }

 private:
  const SimulatedTrainerOptions options_;
};

}  // namespace

std::unique_ptr<Trainer> MakeSimulatedTrainer(const SimulatedTrainerOptions& options) {
  return std::make_unique<SimulatedTrainer>(options);
}

}  // namespace sweep::worker
