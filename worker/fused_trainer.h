#ifndef SWEEP_WORKER_FUSED_TRAINER_H_
#define SWEEP_WORKER_FUSED_TRAINER_H_

// Horizontal fusion of trials: K trials of one LeNet-5 architecture train as one model on
// one device, so that most operators of a step run once for all K trials. The second
// convolution becomes a grouped convolution with K groups (group k contains trial k's
// channels), and the dense layers become batched matrix multiplies over per-trial
// weights. The first convolution, about 1.5% of the work, runs once per trial (see
// fused_trainer.cc). Each trial keeps its own learning rate, dropout probability,
// augmentation, seed, optimizer state, observer, checkpoint and outcome.
//
// Usage:
//   absl::StatusOr<std::unique_ptr<FusedTrainer>> trainer = MakeFusedTrainer(options);
//   std::vector<absl::StatusOr<TrainingResult>> results =
//       (*trainer)->TrainGroup({trial_a, trial_b}, {&observer_a, &observer_b});

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/hyperparameters.h"
#include "worker/trainer.h"

namespace sweep::worker {

// Trains groups of trials that CanFuse accepts, one group at a time, with the LibTorch
// model of MakeTorchTrainer. Each trial reports the metrics, under the same names and
// steps, that MakeTorchTrainer reports for it alone. On the CPU the values agree within
// float rounding, because each trial draws its initial weights, dropout masks, batch
// order and augmentation from its seed exactly as the unfused trainer does. Only the
// grouped convolution sums in another order (below 1e-6 relative after 32 steps in the
// tests). Exceptions:
// - images_per_second and epoch_seconds time the whole group's epoch, so the group's
//   throughput is the sum of its trials' images_per_second.
// - On CUDA a trial draws its dropout masks from a generator seeded with its seed but
//   through another kernel than the unfused model's, so there a fused trial matches its
//   unfused run in distribution only.
class FusedTrainer {
 public:
  virtual ~FusedTrainer() = default;

  // Trains `trials` together and returns one result per trial, in order. `observers[i]`
  // receives trial i's metrics and is polled once per step for a stop. Trials leave the
  // group independently, and the group shrinks so that they cost nothing afterwards:
  // - StopRequested() returning true ends that trial after the step as kStopped.
  // - A non-finite training loss ends that trial as kDiverged.
  // - A trial completes after its own num_epochs, with its test metrics.
  // The other trials train on with the same batches, dropout masks and learning rates. On
  // one CPU their metrics stayed bit for bit the same while the group shrank to two
  // trials. A trial left alone runs an ungrouped convolution, which rounds differently.
  //
  // Errors: every result is INVALID_ARGUMENT when the sizes of `trials` and `observers`
  // differ, an observer is null, or two trials fail CanFuse. A trial whose own values are
  // invalid (keep_prob outside (0, 1], say) gets INVALID_ARGUMENT and the others train. A
  // data load failure or a LibTorch error fails every trial that had not ended yet, and
  // the trainer stays usable for the next group.
  virtual std::vector<absl::StatusOr<TrainingResult>> TrainGroup(
      const std::vector<TrialSpec>& trials, const std::vector<TrainingObserver*>& observers) = 0;

  // The device this trainer runs on, "cpu" or "cuda:N".
  virtual std::string device() const = 0;
};

// Creates the fused LibTorch trainer. It reads the same options as MakeTorchTrainer,
// sets the LibTorch thread count and loads the data set on the first TrainGroup call.
// Returns INVALID_ARGUMENT for a negative option or an unknown device and
// FAILED_PRECONDITION for a CUDA device that LibTorch does not see.
absl::StatusOr<std::unique_ptr<FusedTrainer>> MakeFusedTrainer(const TorchTrainerOptions& options);

}  // namespace sweep::worker

#endif  // SWEEP_WORKER_FUSED_TRAINER_H_
