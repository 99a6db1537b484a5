#ifndef SWEEP_WORKER_TORCH_COMMON_H_
#define SWEEP_WORKER_TORCH_COMMON_H_

// Code that the unfused trainer (worker/torch_trainer.cc) and the fused trainer
// (worker/fused_trainer.cc) share. Sharing it keeps a fused trial's data, batch order,
// metrics and errors the same as its unfused run's. This header includes LibTorch, so only
// the trainer's sources include it.

#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/hyperparameters.h"
#include "worker/lenet.h"
#include "worker/trainer.h"

namespace sweep::worker::internal {

using Clock = std::chrono::steady_clock;

// Images per evaluation batch. On 2 Zen 4 cores, evaluating 10,000 images with the
// default model took 1.5 to 2.3 s in batches of 128 and 2.4 to 2.6 s in batches of 1,000.
inline constexpr int64_t kCpuEvalBatchSize = 128;
// NOTE: not measured. GPUs usually evaluate faster in larger batches.
inline constexpr int64_t kCudaEvalBatchSize = 1000;

double Seconds(Clock::duration duration);

// The training, validation and test sets on the trainer's device.
struct DataSplits {
  TensorDataset train;
  TensorDataset validation;
  TensorDataset test;
};

// Mean loss and accuracy of an epoch's training batches, in training mode.
struct EpochTraining {
  double loss = 0;
  double accuracy = 0;
};

// The device and LibTorch CPU thread count that a trainer's options select.
struct DeviceAndThreads {
  torch::Device device = torch::kCPU;
  int threads = 1;
};

// Checks the options that MakeTorchTrainer and MakeFusedTrainer share, resolves the device
// and sets LibTorch's thread count for the calling thread. Returns INVALID_ARGUMENT for a
// negative option or an unknown device and FAILED_PRECONDITION for a CUDA device that
// LibTorch does not see.
absl::StatusOr<DeviceAndThreads> ConfigureLibTorch(const TorchTrainerOptions& options);

// Checks one trial's hyperparameters. Returns INVALID_ARGUMENT naming the first invalid one.
absl::Status ValidateHyperparameters(const Hyperparameters& hyperparameters);

// Reads Fashion-MNIST from options.data_dir into `data` on `device` unless `data` already
// contains it. The validation set is the last validation_images of the training images in
// use. Logs the split sizes and the load time in a message that starts with `log_prefix`.
// Returns the reader's error, or INVALID_ARGUMENT when validation_images leaves no
// training image.
absl::Status LoadDataOnce(const TorchTrainerOptions& options, const torch::Device& device,
                          std::string_view log_prefix, std::optional<DataSplits>& data);

// Returns how many steps pass between two checks of the mean training loss. That is
// log_every_steps, or 50 when step metrics are off, so that divergence is still detected.
int64_t CheckEverySteps(const TorchTrainerOptions& options);

// Creates the CPU generator of a trial's batch order and augmentation noise. It draws a
// different stream from the one that the trial's seed gives weight initialization and
// dropout.
at::Generator MakeOrderGenerator(uint64_t seed);

// Reports an epoch's train_loss, train_accuracy, val_loss, val_accuracy, epoch_seconds and
// images_per_second at `step`. epoch_seconds is the time from `epoch_start` until it is
// reported.
void ReportEpochMetrics(TrainingObserver& observer, int32_t epoch, int64_t step,
                        const EpochTraining& training, const Evaluation& validation,
                        double images_per_second, Clock::time_point epoch_start);

// Appends best_val_accuracy, best_val_loss and best_epoch (when an epoch was validated) and
// train_seconds to the final metrics of `result`.
void AddSummaryMetrics(int32_t best_epoch, const Evaluation& best_validation, double train_seconds,
                       TrainingResult& result);

// Appends test_loss and test_accuracy to the final metrics of `result`.
void AddTestMetrics(const Evaluation& test, TrainingResult& result);

// Returns the TrainingResult message of a trial that a stop request ended.
std::string StoppedMessage(int32_t epoch, int64_t step);
// Returns the TrainingResult message of a trial that a non-finite training loss ended.
std::string DivergedMessage(double loss, int32_t epoch, int64_t step);

// Saves `archive` as <artifacts_dir>/trial-<id>-attempt-<n>/best.pt and returns that path.
// Writes a temporary file and renames it, so that a failed write keeps the previous
// checkpoint whole. Returns FAILED_PRECONDITION when the directory cannot be created or
// the file cannot be renamed. Throws c10::Error when the archive cannot be written.
absl::StatusOr<std::string> SaveCheckpoint(torch::serialize::OutputArchive& archive,
                                           const std::filesystem::path& artifacts_dir,
                                           const TrialSpec& trial);

// Applies one Adam update to `size` elements of a float CPU parameter and its moments, in
// parallel. The formula and bias corrections are torch::optim::Adam's, evaluated per
// element in float; `step` counts from 1 and includes this update.
void AdamUpdate(float* values, const float* grads, float* exp_avg, float* exp_avg_sq, int64_t size,
                double learning_rate, int64_t step, const torch::optim::AdamOptions& options);

// Converts the exception being handled to a status whose message starts with `subject`:
// RESOURCE_EXHAUSTED for LibTorch's and the allocator's out-of-memory errors, INTERNAL for
// other exceptions. Call it only from a catch block.
absl::Status CurrentExceptionToStatus(absl::string_view subject);

}  // namespace sweep::worker::internal

#endif  // SWEEP_WORKER_TORCH_COMMON_H_
