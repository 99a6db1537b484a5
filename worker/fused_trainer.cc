// The fused LibTorch trainer: a group of trials of one LeNet-5 architecture stacked into
// one model, with per-trial optimizer state, dropout, batches and outcomes.
//
// Every per-trial tensor (parameters, Adam moments, best-validation copies, batch orders,
// augmentation noise, loss and accuracy sums) has the trial as its leading dimension, in
// the order of the trials still training. A trial that ends is removed from all of them
// with index_select, so the remaining trials run smaller grouped operators.

#include "worker/fused_trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/string_utils.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/hyperparameters.h"
#include "worker/augmentation.h"
#include "worker/idx_reader.h"
#include "worker/lenet.h"
#include "worker/torch_common.h"
#include "worker/trainer.h"

namespace sweep::worker {
namespace {

using internal::Clock;
using internal::DataSplits;
using internal::EpochTraining;
using internal::Seconds;

// On CUDA an evaluation batch runs through every trial at once, so the batch shrinks as
// the group grows to keep its activations near those of a training step of 64 trials.
constexpr int64_t kCudaEvalImagesPerForward = 64 * 128;

constexpr int64_t kPadding = 2;

// LeNetImpl's parameters in the order of its parameters(), which is also the order in
// which its checkpoint archive and its optimizer state list them.
enum ParameterIndex : size_t {
  kConv1Weight,
  kConv1Bias,
  kConv2Weight,
  kConv2Bias,
  kDenseWeight,
  kDenseBias,
  kOutputWeight,
  kOutputBias,
  kParameterCount,
};
constexpr std::array<std::string_view, kParameterCount> kParameterNames = {
    "conv1.weight", "conv1.bias", "conv2.weight",  "conv2.bias",
    "dense.weight", "dense.bias", "output.weight", "output.bias"};
constexpr std::array<std::string_view, 4> kLayerNames = {"conv1", "conv2", "dense", "output"};

// One tensor per LeNet parameter, each with the trials as leading dimension: slice k has
// the shape of the LeNet parameter (dense weights are [out, in], like torch::nn::Linear).
using StackedTensors = std::vector<torch::Tensor>;

// Runs every trial's first convolution on its own images [K * N, 1, 28, 28], trial-major,
// and concatenates the outputs to [N, K * conv1_depth, 28, 28], the layout of a grouped
// convolution's output. With one input channel per group, a grouped convolution's weight
// gradient took 50 to 100 times as long as the K convolutions' together in LibTorch 1.13
// on the CPU (oneDNN). An im2col matrix multiply was fast but sums in another order than
// the unfused convolution, which moved a trial's metrics by about 0.2% after 32 steps.
// The first convolution is about 1.5% of the model's FLOPs.
torch::Tensor FirstConvolution(const torch::Tensor& weight, const torch::Tensor& bias,
                               const torch::Tensor& images) {
  const int64_t trials = weight.size(0);
  const int64_t batch = images.size(0) / trials;
  const std::vector<torch::Tensor> weights = weight.unbind(0);
  const std::vector<torch::Tensor> biases = bias.unbind(0);
  std::vector<torch::Tensor> outputs;
  for (int64_t k = 0; k < trials; ++k) {
    outputs.push_back(torch::conv2d(images.slice(0, k * batch, (k + 1) * batch), weights[k],
                                    biases[k], /*stride=*/1, kPadding));
  }
  return trials == 1 ? outputs.front() : torch::cat(outputs, 1);
}

// The dense layers of K trials: for inputs [K, N, in], weights [K, out, in] and biases
// [K, out], returns [K, N, out] = inputs x weights^T + biases. Each trial's products,
// forward and backward, are the BLAS calls that torch::nn::Linear makes for one trial, so
// they round alike. The weight gradient comes out contiguous, where baddbmm's own backward
// would return it transposed and autograd would copy it.
class BatchedLinearFunction : public torch::autograd::Function<BatchedLinearFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* context,
                               const torch::Tensor& inputs, const torch::Tensor& weights,
                               const torch::Tensor& biases) {
    context->save_for_backward({inputs, weights});
    return torch::baddbmm(biases.unsqueeze(1), inputs, weights.transpose(1, 2));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list grad_outputs) {
    const torch::autograd::variable_list saved = context->get_saved_variables();
    const torch::Tensor& inputs = saved[0];
    const torch::Tensor& weights = saved[1];
    const torch::Tensor grad = grad_outputs[0].contiguous();
    return {grad.bmm(weights), grad.transpose(1, 2).bmm(inputs), grad.sum(1)};
  }
};

// Runs the stacked LeNets of the K trials of `parameters` on `images` [K * N, 1, 28, 28],
// trial-major, so that rows k * N to (k + 1) * N - 1 are trial k's batch.
// `dropout_masks` [K, N, dense_layer_units], when defined, multiplies the dense
// activations. Returns the logits [K, N, 10].
torch::Tensor FusedForward(const StackedTensors& parameters, const torch::Tensor& images,
                           const torch::Tensor& dropout_masks) {
  const int64_t trials = parameters[kConv1Weight].size(0);
  const int64_t batch = images.size(0) / trials;
  torch::Tensor x = FirstConvolution(parameters[kConv1Weight], parameters[kConv1Bias], images);
  x = ReluMaxPool2x2(x);
  // Channel group k of the input and of the output belongs to trial k.
  x = torch::conv2d(x, parameters[kConv2Weight].flatten(0, 1), parameters[kConv2Bias].flatten(),
                    /*stride=*/1, kPadding, /*dilation=*/1, /*groups=*/trials);
  x = ReluMaxPool2x2(x);

  // [N, K * conv2_depth, 7, 7] becomes [K, N, conv2_depth * 49]: each trial's rows are
  // flattened in the unfused model's (channel, row, column) order.
  x = x.view({batch, trials, -1}).transpose(0, 1);
  // In place is safe because the dense layer's backward does not read its output.
  x = BatchedLinearFunction::apply(x, parameters[kDenseWeight], parameters[kDenseBias]).relu_();
  if (dropout_masks.defined()) x = x * dropout_masks;
  return BatchedLinearFunction::apply(x, parameters[kOutputWeight], parameters[kOutputBias]);
}

// Returns the mean cross-entropy loss of each trial [K] from logits [K, N, 10] and labels
// [K, N]. Their sum has, for each trial's parameters, the gradient of that trial's loss.
torch::Tensor PerTrialLoss(const torch::Tensor& logits, const torch::Tensor& labels) {
  const int64_t trials = logits.size(0);
  return torch::cross_entropy_loss(logits.flatten(0, 1), labels.flatten(), {}, at::Reduction::None)
      .view({trials, -1})
      .mean(1);
}

StackedTensors Select(const StackedTensors& tensors, const torch::Tensor& index) {
  StackedTensors selected;
  for (const torch::Tensor& tensor : tensors) selected.push_back(tensor.index_select(0, index));
  return selected;
}

// Evaluates each trial's model in `parameters` on `data` without dropout or gradients.
std::vector<Evaluation> EvaluateGroup(const StackedTensors& parameters, const TensorDataset& data,
                                      int64_t batch_size) {
  torch::NoGradGuard no_grad;
  const int64_t trials = parameters[kConv1Weight].size(0);
  const int64_t count = data.size();
  const torch::TensorOptions options = data.images.options();
  torch::Tensor loss_sums = torch::zeros({trials}, options.dtype(torch::kDouble));
  torch::Tensor correct = torch::zeros({trials}, options.dtype(torch::kLong));
  for (int64_t begin = 0; begin < count; begin += batch_size) {
    const int64_t end = std::min(begin + batch_size, count);
    const int64_t batch = end - begin;
    const torch::Tensor images = data.images.slice(0, begin, end)
                                     .unsqueeze(0)
                                     .expand({trials, batch, 1, kImageSide, kImageSide})
                                     .reshape({trials * batch, 1, kImageSide, kImageSide});
    const torch::Tensor labels = data.labels.slice(0, begin, end).expand({trials, batch});
    const torch::Tensor logits = FusedForward(parameters, images, {});
    loss_sums.add_(
        torch::cross_entropy_loss(logits.flatten(0, 1), labels.flatten(), {}, at::Reduction::None)
            .view({trials, -1})
            .sum(1));
    correct.add_(logits.argmax(2).eq(labels).sum(1));
  }

  const torch::Tensor host_loss_sums = loss_sums.cpu();
  const torch::Tensor host_correct = correct.cpu();
  std::vector<Evaluation> evaluations;
  for (int64_t k = 0; k < trials; ++k) {
    evaluations.push_back(Evaluation{
        .loss = count > 0 ? host_loss_sums[k].item<double>() / static_cast<double>(count) : 0,
        .accuracy = count > 0 ? static_cast<double>(host_correct[k].item<int64_t>()) /
                                    static_cast<double>(count)
                              : 0});
  }
  return evaluations;
}

// A torch::optim::Adam whose state can be set, so that a trial's slice of the fused
// optimizer state saves in the unfused trainer's checkpoint format.
class CheckpointAdam final : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;

  void SetState(const torch::Tensor& parameter, int64_t step, torch::Tensor exp_avg,
                torch::Tensor exp_avg_sq) {
    auto state = std::make_unique<torch::optim::AdamParamState>();
    state->step(step);
    state->exp_avg(std::move(exp_avg));
    state->exp_avg_sq(std::move(exp_avg_sq));
    state_[c10::guts::to_string(parameter.unsafeGetTensorImpl())] = std::move(state);
  }
};

// Checks the group as a whole: matching sizes, observers present, fusable trials.
absl::Status ValidateGroup(const std::vector<TrialSpec>& trials,
                           const std::vector<TrainingObserver*>& observers) {
  if (trials.size() != observers.size()) {
    return absl::InvalidArgumentError(absl::StrCat("fused group: ", trials.size(), " trials but ",
                                                   observers.size(),
                                                   " observers; pass one observer per trial"));
  }
  for (size_t i = 0; i < trials.size(); ++i) {
    if (observers[i] == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("fused group: the observer of trial ", trials[i].trial_id, " is null"));
    }
    if (!CanFuse(trials[0].hyperparameters, trials[i].hyperparameters)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fused group: trial ", trials[i].trial_id, " differs from trial ", trials[0].trial_id,
          " in conv1_depth, conv2_depth, dense_layer_units or batch_size; train it in another "
          "group"));
    }
  }
  return absl::OkStatus();
}

// One trial of a running group: its inputs, random generators and best epoch so far.
struct GroupTrial {
  // Position in the TrainGroup arguments.
  size_t index = 0;
  const TrialSpec* spec = nullptr;
  TrainingObserver* observer = nullptr;
  // Bernoulli probability of keeping a unit, computed as the unfused model computes it.
  double keep_probability = 1;
  // On the CPU, the generator that the unfused model would draw its dropout masks from.
  at::Generator dropout_generator;
  at::Generator order_generator;
  int32_t best_epoch = 0;
  Evaluation best_validation;
  std::string checkpoint_path;
};

// Trains one validated group on data already on the device. Stores each trial's result in
// `results` as soon as the trial ends. Use once.
class GroupRun {
 public:
  GroupRun(const TorchTrainerOptions& options, const DataSplits& data, torch::Device device,
           std::vector<GroupTrial> trials,
           std::vector<std::optional<absl::StatusOr<TrainingResult>>>& results)
      : options_(options),
        data_(data),
        device_(device),
        hyperparameters_(trials.front().spec->hyperparameters),
        check_every_steps_(internal::CheckEverySteps(options)),
        trials_(std::move(trials)),
        results_(results) {}

  void Run() {
    Initialize();
    start_ = Clock::now();
    for (int32_t epoch = 1; !trials_.empty(); ++epoch) RunEpoch(epoch);
  }

 private:
  int64_t size() const { return static_cast<int64_t>(trials_.size()); }

  // Builds each trial's LeNet exactly as the unfused trainer does, keeps the default
  // generator's state after it for the trial's dropout, and stacks the parameters.
  void Initialize() {
    std::vector<StackedTensors> per_trial(kParameterCount);
    for (GroupTrial& trial : trials_) {
      torch::manual_seed(trial.spec->seed);
      LeNet model(trial.spec->hyperparameters);
      trial.dropout_generator = MakeDropoutGenerator(*trial.spec);
      trial.order_generator = internal::MakeOrderGenerator(trial.spec->seed);
      const double drop_probability = 1.0 - trial.spec->hyperparameters.keep_prob;
      trial.keep_probability = 1 - drop_probability;
      const auto named = model->named_parameters();
      for (size_t i = 0; i < kParameterCount; ++i) {
        per_trial[i].push_back(named[std::string(kParameterNames[i])].detach());
      }
    }

    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < kParameterCount; ++i) {
      parameters_.push_back(torch::stack(per_trial[i]).to(device_).requires_grad_());
      exp_avg_.push_back(torch::zeros_like(parameters_.back()));
      exp_avg_sq_.push_back(torch::zeros_like(parameters_.back()));
      best_parameters_.push_back(torch::zeros_like(parameters_.back()));
    }
    const torch::TensorOptions options = torch::TensorOptions(device_).dtype(torch::kDouble);
    interval_loss_sums_ = torch::zeros({size()}, options);
    epoch_loss_sums_ = torch::zeros({size()}, options);
    epoch_correct_ = torch::zeros({size()}, options.dtype(torch::kLong));
    RebuildTrialTensors();
  }

  // On the CPU, returns a copy of the default generator, which the unfused model draws its
  // dropout masks from after Initialize seeded it and built the model. On CUDA the unfused
  // model draws from the device's default generator with the fused dropout kernel, which
  // a per-trial draw cannot reproduce, so the copy only gets the trial's seed.
  at::Generator MakeDropoutGenerator(const TrialSpec& trial) const {
    at::Generator source = device_.is_cpu() ? at::detail::getDefaultCPUGenerator()
                                            : at::globalContext().defaultGenerator(device_);
    std::lock_guard<std::mutex> lock(source.mutex());
    at::Generator generator = source.clone();
    // NOTE: the CUDA generators have not run here, because no GPU was available.
    if (!device_.is_cpu()) generator.set_current_seed(trial.seed);
    return generator;
  }

  // Trains one epoch, validates, reports the epoch's metrics and ends the trials whose
  // last epoch this was.
  void RunEpoch(int32_t epoch) {
    const Clock::time_point epoch_start = Clock::now();
    if (!TrainEpoch(epoch)) return;
    const double train_seconds = Seconds(Clock::now() - epoch_start);

    const std::vector<Evaluation> validation =
        EvaluateGroup(parameters_, data_.validation, EvalBatchSize());
    std::vector<EpochTraining> training = std::move(epoch_training_);
    for (int64_t slot = 0; slot < size(); ++slot) {
      GroupTrial& trial = trials_[slot];
      if (trial.best_epoch == 0 || validation[slot].accuracy > trial.best_validation.accuracy) {
        trial.best_epoch = epoch;
        trial.best_validation = validation[slot];
        SaveBestParameters(slot);
        if (absl::Status status = WriteCheckpoint(slot); !status.ok()) {
          EndWithError(slot, std::move(status));
        }
      }
    }
    for (int64_t slot = 0; slot < size(); ++slot) {
      if (ended_[slot]) continue;
      internal::ReportEpochMetrics(
          *trials_[slot].observer, epoch, step_, training[slot], validation[slot],
          static_cast<double>(data_.train.size()) / train_seconds, epoch_start);
    }
    CompleteTrials(epoch);
    RemoveEndedTrials();
  }

  // Runs one epoch of training steps, each trial over the training set in its own new
  // random order. Stores the trials' mean loss and accuracy in epoch_training_. Trials
  // that stop or diverge leave the group; returns false when none is left.
  bool TrainEpoch(int32_t epoch) {
    epoch_training_.clear();
    DrawEpochOrders();
    const int64_t count = data_.train.size();
    epoch_loss_sums_.zero_();
    epoch_correct_.zero_();
    for (int64_t begin = 0; begin < count; begin += hyperparameters_.batch_size) {
      const int64_t end = std::min(begin + hyperparameters_.batch_size, count);
      TrainStep(begin, end);
      if (step_ % check_every_steps_ == 0) CheckInterval(epoch);
      PollStopRequests(epoch);
      RemoveEndedTrials();
      if (trials_.empty()) return false;
    }

    // Reading the sums back waits for the device, so the epoch's time includes its work.
    const torch::Tensor loss_sums = epoch_loss_sums_.cpu();
    const torch::Tensor correct = epoch_correct_.cpu();
    for (int64_t slot = 0; slot < size(); ++slot) {
      const EpochTraining training{
          .loss = loss_sums[slot].item<double>() / static_cast<double>(count),
          .accuracy =
              static_cast<double>(correct[slot].item<int64_t>()) / static_cast<double>(count)};
      if (!std::isfinite(training.loss)) Diverge(slot, training.loss, epoch);
      epoch_training_.push_back(training);
    }
    RemoveEndedTrials();
    return !trials_.empty();
  }

  // Draws each trial's batch order and augmentation noise for an epoch from its own
  // generator, in the unfused trainer's order of draws.
  void DrawEpochOrders() {
    const int64_t count = data_.train.size();
    std::vector<torch::Tensor> orders;
    std::vector<torch::Tensor> noise;
    bool augmented = false;
    for (GroupTrial& trial : trials_) {
      orders.push_back(torch::randperm(count, trial.order_generator, torch::kLong));
      if (trial.spec->hyperparameters.augmentation != Augmentation::kNone) {
        noise.push_back(DrawAugmentationNoise(count, trial.order_generator));
        augmented = true;
      } else {
        noise.push_back(torch::zeros({count, kAugmentationNoiseColumns}));
      }
    }
    epoch_orders_ = torch::stack(orders).to(device_);
    epoch_noise_ = augmented ? torch::stack(noise).to(device_) : torch::Tensor();
  }

  // Runs forward, backward and the optimizer on one batch per trial without waiting for
  // the device, and adds the batch to the loss and accuracy sums.
  void TrainStep(int64_t begin, int64_t end) {
    const int64_t batch = end - begin;
    const torch::Tensor indices = epoch_orders_.slice(1, begin, end).flatten();
    const torch::Tensor labels = data_.train.labels.index_select(0, indices).view({size(), batch});
    torch::Tensor images = data_.train.images.index_select(0, indices);
    AugmentBatch(images, begin, end);

    const torch::Tensor logits = FusedForward(parameters_, images, DrawDropoutMasks(batch));
    const torch::Tensor losses = PerTrialLoss(logits, labels);
    // Dropping the gradients instead of zeroing them lets backward write them directly.
    for (torch::Tensor& parameter : parameters_) parameter.mutable_grad().reset();
    losses.sum().backward();
    AdamStep();
    ++step_;

    const torch::Tensor detached_losses = losses.detach();
    interval_loss_sums_.add_(detached_losses);
    epoch_loss_sums_.add_(detached_losses, static_cast<double>(batch));
    epoch_correct_.add_(logits.detach().argmax(2).eq(labels).sum(1));
  }

  // Augments the rows of `images` [K * batch, 1, 28, 28] of trials that augment, one call
  // per kind of augmentation. Each image depends only on itself and its noise row, so the
  // result equals augmenting each trial's batch alone.
  void AugmentBatch(torch::Tensor& images, int64_t begin, int64_t end) {
    if (!epoch_noise_.defined()) return;
    const int64_t batch = end - begin;
    const torch::Tensor by_trial = images.view({size(), batch, 1, kImageSide, kImageSide});
    for (const auto& [augmentation, slots] : augmentation_slots_) {
      const torch::Tensor augmented = AugmentImages(
          by_trial.index_select(0, slots).flatten(0, 1),
          epoch_noise_.index_select(0, slots).slice(1, begin, end).flatten(0, 1), augmentation);
      by_trial.index_copy_(0, slots, augmented.view({-1, batch, 1, kImageSide, kImageSide}));
    }
  }

  // Returns each trial's dropout multipliers [K, batch, dense_layer_units], zero or
  // 1 / keep_prob, or an undefined tensor when no trial drops units. Each trial draws its
  // mask from its own generator with the unfused model's calls, so a trial's masks do
  // not depend on the other trials in the group.
  torch::Tensor DrawDropoutMasks(int64_t batch) {
    const bool any_dropout =
        std::any_of(trials_.begin(), trials_.end(),
                    [](const GroupTrial& trial) { return trial.keep_probability < 1; });
    if (!any_dropout) return {};
    torch::Tensor masks = torch::empty({size(), batch, hyperparameters_.dense_layer_units},
                                       torch::TensorOptions(device_));
    for (int64_t slot = 0; slot < size(); ++slot) {
      GroupTrial& trial = trials_[slot];
      torch::Tensor mask = masks.select(0, slot);
      if (trial.keep_probability < 1) {
        mask.bernoulli_(trial.keep_probability, trial.dropout_generator)
            .div_(trial.keep_probability);
      } else {
        mask.fill_(1);
      }
    }
    return masks;
  }

  // Applies Adam with each trial's learning rate. All trials in the group have taken the
  // same number of steps, so they share the bias corrections.
  void AdamStep() {
    torch::NoGradGuard no_grad;
    const int64_t step = step_ + 1;
    if (device_.is_cpu()) {
      for (size_t i = 0; i < kParameterCount; ++i) AdamStepCpu(i, step);
      return;
    }
    const double beta1 = std::get<0>(adam_options_.betas());
    const double beta2 = std::get<1>(adam_options_.betas());
    const double bias_correction1 = 1 - std::pow(beta1, step);
    const double sqrt_bias_correction2 = std::sqrt(1 - std::pow(beta2, step));
    const torch::Tensor step_sizes = learning_rates_.div(bias_correction1);
    for (size_t i = 0; i < kParameterCount; ++i) {
      const torch::Tensor& grad = parameters_[i].grad();
      // Each trial's step size broadcasts over its slice.
      std::vector<int64_t> shape(parameters_[i].dim(), 1);
      shape[0] = size();
      exp_avg_[i].mul_(beta1).add_(grad, 1 - beta1);
      exp_avg_sq_[i].mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      const torch::Tensor denominator =
          exp_avg_sq_[i].sqrt().div_(sqrt_bias_correction2).add_(adam_options_.eps());
      parameters_[i].sub_(exp_avg_[i].div(denominator).mul_(step_sizes.view(shape)));
    }
  }

  void AdamStepCpu(size_t index, int64_t step) {
    torch::Tensor& parameter = parameters_[index];
    const torch::Tensor grad = parameter.grad().contiguous();
    const int64_t slice_size = parameter.numel() / size();
    float* values = parameter.data_ptr<float>();
    const float* grads = grad.data_ptr<float>();
    float* exp_avg = exp_avg_[index].data_ptr<float>();
    float* exp_avg_sq = exp_avg_sq_[index].data_ptr<float>();
    for (int64_t slot = 0; slot < size(); ++slot) {
      const int64_t offset = slot * slice_size;
      internal::AdamUpdate(values + offset, grads + offset, exp_avg + offset, exp_avg_sq + offset,
                           slice_size, trials_[slot].spec->hyperparameters.learning_rate, step,
                           adam_options_);
    }
  }

  // Reads back each trial's mean loss over the steps since the last check, reports it as
  // step_train_loss when step metrics are on, and ends the trials whose mean is not finite.
  void CheckInterval(int32_t epoch) {
    // A copy even on the CPU, where cpu() would return the tensor that is zeroed next.
    const torch::Tensor sums =
        interval_loss_sums_.to(torch::kCPU, /*non_blocking=*/false, /*copy=*/true);
    interval_loss_sums_.zero_();
    for (int64_t slot = 0; slot < size(); ++slot) {
      const double mean_loss = sums[slot].item<double>() / static_cast<double>(check_every_steps_);
      if (!std::isfinite(mean_loss)) {
        Diverge(slot, mean_loss, epoch);
      } else if (options_.log_every_steps > 0) {
        trials_[slot].observer->OnMetric(epoch, step_, "step_train_loss", mean_loss);
      }
    }
  }

  void PollStopRequests(int32_t epoch) {
    for (int64_t slot = 0; slot < size(); ++slot) {
      if (ended_[slot] || !trials_[slot].observer->StopRequested()) continue;
      End(slot, TrainingOutcome::kStopped, internal::StoppedMessage(epoch, step_));
    }
  }

  void Diverge(int64_t slot, double loss, int32_t epoch) {
    End(slot, TrainingOutcome::kDiverged, internal::DivergedMessage(loss, epoch, step_));
  }

  // Stores the result of a trial that stopped or diverged. It leaves the group at the next
  // RemoveEndedTrials.
  void End(int64_t slot, TrainingOutcome outcome, std::string message) {
    TrainingResult result = FinalResult(trials_[slot]);
    result.outcome = outcome;
    result.message = std::move(message);
    SetResult(slot, std::move(result));
  }

  void EndWithError(int64_t slot, absl::Status status) { SetResult(slot, std::move(status)); }

  // Stores a trial's result, marks it ended and passes the result to its observer.
  void SetResult(int64_t slot, absl::StatusOr<TrainingResult> result) {
    std::optional<absl::StatusOr<TrainingResult>>& stored = results_[trials_[slot].index];
    stored = std::move(result);
    ended_[slot] = true;
    trials_[slot].observer->OnEnded(*stored);
  }

  // The final metrics every outcome reports, in the unfused trainer's order.
  TrainingResult FinalResult(const GroupTrial& trial) const {
    TrainingResult result;
    internal::AddSummaryMetrics(trial.best_epoch, trial.best_validation,
                                Seconds(Clock::now() - start_), result);
    result.checkpoint_path = trial.checkpoint_path;
    return result;
  }

  // Tests the best-validation parameters of the trials whose last epoch was `epoch` and
  // stores their results.
  void CompleteTrials(int32_t epoch) {
    std::vector<int64_t> completing;
    for (int64_t slot = 0; slot < size(); ++slot) {
      if (!ended_[slot] && trials_[slot].spec->hyperparameters.num_epochs == epoch) {
        completing.push_back(slot);
      }
    }
    if (completing.empty()) return;

    // Like the unfused trainer's, train_seconds ends before the test evaluation.
    std::vector<TrainingResult> completed;
    for (int64_t slot : completing) completed.push_back(FinalResult(trials_[slot]));
    const torch::Tensor index = torch::tensor(completing, torch::kLong).to(device_);
    const std::vector<Evaluation> test =
        EvaluateGroup(Select(best_parameters_, index), data_.test, EvalBatchSize());
    for (size_t i = 0; i < completing.size(); ++i) {
      const int64_t slot = completing[i];
      internal::AddTestMetrics(test[i], completed[i]);
      SetResult(slot, std::move(completed[i]));
    }
  }

  // Drops the ended trials from every per-trial tensor.
  void RemoveEndedTrials() {
    if (std::none_of(ended_.begin(), ended_.end(), [](bool ended) { return ended; })) return;
    std::vector<int64_t> kept_slots;
    std::vector<GroupTrial> kept_trials;
    for (int64_t slot = 0; slot < size(); ++slot) {
      if (ended_[slot]) continue;
      kept_slots.push_back(slot);
      kept_trials.push_back(std::move(trials_[slot]));
    }
    trials_ = std::move(kept_trials);
    if (!trials_.empty()) {
      const torch::Tensor index = torch::tensor(kept_slots, torch::kLong).to(device_);
      torch::NoGradGuard no_grad;
      for (torch::Tensor& parameter : parameters_) {
        parameter = parameter.index_select(0, index).requires_grad_();
      }
      for (StackedTensors* stacked : {&exp_avg_, &exp_avg_sq_, &best_parameters_}) {
        *stacked = Select(*stacked, index);
      }
      for (torch::Tensor* tensor : {&interval_loss_sums_, &epoch_loss_sums_, &epoch_correct_,
                                    &epoch_orders_, &epoch_noise_}) {
        if (tensor->defined()) *tensor = tensor->index_select(0, index);
      }
      std::vector<EpochTraining> kept_training;
      for (int64_t slot : kept_slots) {
        if (static_cast<size_t>(slot) < epoch_training_.size()) {
          kept_training.push_back(epoch_training_[slot]);
        }
      }
      epoch_training_ = std::move(kept_training);
    }
    RebuildTrialTensors();
  }

  // Rebuilds what derives from the list of trials: the ended flags, the learning rates on
  // the device, and the trials of each kind of augmentation.
  void RebuildTrialTensors() {
    ended_.assign(trials_.size(), false);
    std::vector<double> learning_rates;
    for (const GroupTrial& trial : trials_) {
      learning_rates.push_back(trial.spec->hyperparameters.learning_rate);
    }
    const torch::TensorOptions options = torch::TensorOptions().dtype(torch::kFloat);
    learning_rates_ = torch::tensor(learning_rates, options).to(device_);

    augmentation_slots_.clear();
    for (Augmentation augmentation :
         {Augmentation::kFlip, Augmentation::kCrop, Augmentation::kFlipAndCrop}) {
      std::vector<int64_t> slots;
      for (int64_t slot = 0; slot < size(); ++slot) {
        if (trials_[slot].spec->hyperparameters.augmentation == augmentation) {
          slots.push_back(slot);
        }
      }
      if (slots.empty()) continue;
      augmentation_slots_.emplace_back(augmentation,
                                       torch::tensor(slots, torch::kLong).to(device_));
    }
  }

  void SaveBestParameters(int64_t slot) {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < kParameterCount; ++i) {
      best_parameters_[i].select(0, slot).copy_(parameters_[i].select(0, slot));
    }
  }

  // Writes the trial's model and optimizer state, as they are now, in the unfused
  // trainer's format: <artifacts_dir>/trial-<id>-attempt-<n>/best.pt, a torch::serialize
  // archive with nested archives "model" (loads into LeNet) and "optimizer" (loads into
  // torch::optim::Adam over the LeNet's parameters). Does nothing without artifacts_dir.
  absl::Status WriteCheckpoint(int64_t slot) {
    if (options_.artifacts_dir.empty()) return absl::OkStatus();
    torch::serialize::OutputArchive archive;
    WriteTrialArchives(slot, archive);
    absl::StatusOr<std::string> path =
        internal::SaveCheckpoint(archive, options_.artifacts_dir, *trials_[slot].spec);
    if (!path.ok()) return path.status();
    trials_[slot].checkpoint_path = *std::move(path);
    return absl::OkStatus();
  }

  void WriteTrialArchives(int64_t slot, torch::serialize::OutputArchive& archive) {
    torch::NoGradGuard no_grad;
    // Clones, because saving a view would save the whole group's storage.
    std::vector<torch::Tensor> parameters;
    for (const torch::Tensor& parameter : parameters_) {
      parameters.push_back(parameter.select(0, slot).clone());
    }
    torch::serialize::OutputArchive model_archive;
    for (size_t layer = 0; layer < kLayerNames.size(); ++layer) {
      torch::serialize::OutputArchive layer_archive;
      layer_archive.write("weight", parameters[2 * layer]);
      layer_archive.write("bias", parameters[2 * layer + 1]);
      model_archive.write(std::string(kLayerNames[layer]), layer_archive);
    }

    CheckpointAdam optimizer(
        parameters, torch::optim::AdamOptions(trials_[slot].spec->hyperparameters.learning_rate));
    for (size_t i = 0; i < kParameterCount; ++i) {
      optimizer.SetState(parameters[i], step_, exp_avg_[i].select(0, slot).clone(),
                         exp_avg_sq_[i].select(0, slot).clone());
    }
    torch::serialize::OutputArchive optimizer_archive;
    optimizer.save(optimizer_archive);
    archive.write("model", model_archive);
    archive.write("optimizer", optimizer_archive);
  }

  int64_t EvalBatchSize() const {
    if (!device_.is_cuda()) return internal::kCpuEvalBatchSize;
    return std::clamp<int64_t>(kCudaEvalImagesPerForward / size(), 1, internal::kCudaEvalBatchSize);
  }

  const TorchTrainerOptions& options_;
  const DataSplits& data_;
  const torch::Device device_;
  // The values every trial shares (architecture and batch size).
  const Hyperparameters hyperparameters_;
  const int64_t check_every_steps_;
  const torch::optim::AdamOptions adam_options_{1e-3};
  std::vector<GroupTrial> trials_;
  std::vector<std::optional<absl::StatusOr<TrainingResult>>>& results_;

  // Per-trial tensors, in the order of trials_.
  StackedTensors parameters_;
  StackedTensors exp_avg_;
  StackedTensors exp_avg_sq_;
  StackedTensors best_parameters_;
  torch::Tensor interval_loss_sums_;
  torch::Tensor epoch_loss_sums_;
  torch::Tensor epoch_correct_;
  torch::Tensor epoch_orders_;
  torch::Tensor epoch_noise_;
  torch::Tensor learning_rates_;
  std::vector<std::pair<Augmentation, torch::Tensor>> augmentation_slots_;
  std::vector<EpochTraining> epoch_training_;
  // Trials that ended during the current step or epoch end and are still in the tensors.
  std::vector<bool> ended_;

  Clock::time_point start_;
  int64_t step_ = 0;
};

class TorchFusedTrainer final : public FusedTrainer {
 public:
  TorchFusedTrainer(TorchTrainerOptions options, torch::Device device, int threads)
      : options_(std::move(options)), device_(device), threads_(threads) {}

  std::vector<absl::StatusOr<TrainingResult>> TrainGroup(
      const std::vector<TrialSpec>& trials,
      const std::vector<TrainingObserver*>& observers) override {
    if (absl::Status status = ValidateGroup(trials, observers); !status.ok()) {
      return std::vector<absl::StatusOr<TrainingResult>>(trials.size(), status);
    }
    std::vector<std::optional<absl::StatusOr<TrainingResult>>> results(trials.size());
    std::vector<GroupTrial> group;
    for (size_t i = 0; i < trials.size(); ++i) {
      if (absl::Status status = internal::ValidateHyperparameters(trials[i].hyperparameters);
          !status.ok()) {
        results[i] = std::move(status);
        continue;
      }
      group.push_back(GroupTrial{.index = i, .spec = &trials[i], .observer = observers[i]});
    }

    if (!group.empty()) {
      const absl::Status status = TrainValidGroup(std::move(group), results);
      for (std::optional<absl::StatusOr<TrainingResult>>& result : results) {
        if (result.has_value()) continue;
        result = status.ok() ? absl::InternalError("fused group: a trial ended without a result")
                             : status;
      }
    }
    std::vector<absl::StatusOr<TrainingResult>> returned;
    for (std::optional<absl::StatusOr<TrainingResult>>& result : results) {
      returned.push_back(*std::move(result));
    }
    return returned;
  }

  std::string device() const override { return device_.str(); }

 private:
  // Trains a group of valid trials. Returns an error for a failure that ends every trial
  // still in the group, after catching LibTorch and allocation exceptions.
  absl::Status TrainValidGroup(
      std::vector<GroupTrial> group,
      std::vector<std::optional<absl::StatusOr<TrainingResult>>>& results) {
    try {
      if (absl::Status status = internal::LoadDataOnce(options_, device_, "fused trainer: ", data_);
          !status.ok()) {
        return status;
      }
      // The OpenMP thread count is per thread, and TrainGroup may run on a thread other
      // than the one that created the trainer.
      torch::set_num_threads(threads_);
      std::vector<int64_t> ids;
      for (const GroupTrial& trial : group) ids.push_back(trial.spec->trial_id);
      spdlog::info("fused trainer: training {} trials on {}: trial={}", ids.size(), device_.str(),
                   absl::StrJoin(ids, ","));
      const Clock::time_point start = Clock::now();
      GroupRun run(options_, *data_, device_, std::move(group), results);
      run.Run();
      spdlog::info("fused trainer: group of {} trials finished in {:.1f} s", ids.size(),
                   Seconds(Clock::now() - start));
      return absl::OkStatus();
    } catch (const std::exception&) {
      return internal::CurrentExceptionToStatus("fused group");
    }
  }

  const TorchTrainerOptions options_;
  const torch::Device device_;
  const int threads_;
  std::optional<DataSplits> data_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FusedTrainer>> MakeFusedTrainer(const TorchTrainerOptions& options) {
  absl::StatusOr<internal::DeviceAndThreads> configured = internal::ConfigureLibTorch(options);
  if (!configured.ok()) return configured.status();
  const auto [device, threads] = *configured;
  spdlog::info("fused trainer: device={} threads={}", device.str(), threads);
  return std::make_unique<TorchFusedTrainer>(options, device, threads);
}

}  // namespace sweep::worker
