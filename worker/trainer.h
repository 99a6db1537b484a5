#ifndef SWEEP_WORKER_TRAINER_H_
#define SWEEP_WORKER_TRAINER_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/hyperparameters.h"

namespace sweep::worker {

// One trial to train: its identity and hyperparameters.
struct TrialSpec {
  int64_t trial_id = 0;
  int32_t attempt = 0;
  Hyperparameters hyperparameters;
  // Seeds weights, dropout, batch order and augmentation; the same seed on the same CPU
  // reproduces the same metrics.
  uint64_t seed = 0;
};

enum class TrainingOutcome {
  kCompleted,
  // StopRequested() returned true.
  kStopped,
  // The training loss became NaN or infinite.
  kDiverged,
};

struct TrainingResult {
  TrainingOutcome outcome = TrainingOutcome::kCompleted;
  // Final metrics (test_loss, test_accuracy, best_val_accuracy, best_epoch, ...).
  std::vector<std::pair<std::string, double>> final_metrics;
  // Best-validation checkpoint, empty when none was written.
  std::string checkpoint_path;
  // Why training ended when it did not complete, e.g. "diverged: train loss is nan at
  // epoch 1 step 3".
  std::string message;
};

// Receives metrics while a trial trains. Called on the training thread.
class TrainingObserver {
 public:
  virtual ~TrainingObserver() = default;

  // Records one metric value. Epochs count from 1; `step` counts optimizer steps from 1
  // over the whole trial (0 for values that belong to no step).
  virtual void OnMetric(int32_t epoch, int64_t step, std::string_view name, double value) = 0;

  // Polled once per training step; true ends training after that step.
  virtual bool StopRequested() = 0;

  // Receives the trial's result as soon as it is known. FusedTrainer calls it when a trial
  // leaves its group, before TrainGroup returns, so that the trial's end can be reported
  // while the others train; Trainer::Train does not call it.
  virtual void OnEnded(const absl::StatusOr<TrainingResult>& result) {}
};

// Trains trials one at a time. Errors (bad data, LibTorch exceptions, out of memory) come
// back as a status; the trainer stays usable for the next trial.
class Trainer {
 public:
  virtual ~Trainer() = default;

  virtual absl::StatusOr<TrainingResult> Train(const TrialSpec& trial,
                                               TrainingObserver& observer) = 0;

  // The device this trainer runs on, "cpu" or "cuda:N".
  virtual std::string device() const = 0;
};

struct TorchTrainerOptions {
  std::filesystem::path data_dir = "/usr/share/datasets/fashion-mnist";
  // "auto" (CUDA when LibTorch sees a GPU, else CPU), "cpu" or "cuda[:N]".
  std::string device = "auto";
  // Uses only the first this many training images (before the validation split is taken
  // from their end); 0 uses all 60,000.
  int64_t max_train_images = 0;
  // Uses only the first this many test images; 0 uses all 10,000.
  int64_t max_test_images = 0;
  // Images held out of the end of the (limited) training set for validation.
  int64_t validation_images = 5000;
  // CPU threads for LibTorch; 0 uses every hardware thread.
  int threads = 0;
  // Records the training loss every this many steps; 0 turns step metrics off.
  int log_every_steps = 50;
  // Directory for best-validation checkpoints; empty writes none.
  std::filesystem::path artifacts_dir;
};

// Creates the LibTorch trainer. Configures threads and logs the BLAS, thread count and
// device. The data set is loaded and validated on the first Train call and kept in memory;
// a load error fails that trial and is retried on the next one.
absl::StatusOr<std::unique_ptr<Trainer>> MakeTorchTrainer(const TorchTrainerOptions& options);

// Creates the simulated trainer, a test double for orchestration tests: it trains nothing
// and emits metrics on a schedule. `step_ms` is the time per step; trials whose
// learning_rate is at least `diverge_learning_rate` report a NaN loss.
struct SimulatedTrainerOptions {
  int steps_per_epoch = 10;
  int step_ms = 20;
  double diverge_learning_rate = 1.0;
};
std::unique_ptr<Trainer> MakeSimulatedTrainer(const SimulatedTrainerOptions& options);

}  // namespace sweep::worker

#endif  // SWEEP_WORKER_TRAINER_H_
