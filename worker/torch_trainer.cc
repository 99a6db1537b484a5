// The LibTorch trainer: the LeNet-5 model, its fused CPU kernels, the training loop and
// the platform checks done at creation.

#include <ATen/Parallel.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/util/string_utils.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <link.h>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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

// Argmax code of ReluMaxPool2x2 for a window whose maximum is not positive, so that ReLU
// passes no gradient to it.
constexpr uint8_t kNoGradient = 4;

// The pooling kernels below use SSE2, which every x86-64 CPU has, because GCC 12 does not
// vectorize the plain loops: the NaN-aware comparisons keep branches in them. Each kernel
// has a scalar version that gives the same results for other CPUs and for the last
// elements.

// Finds the maximum of a 2x2 window, its position (0 to 3 in row-major order) and applies
// ReLU. Like max_pool2d it keeps the first maximum, and a NaN wins over any number.
void ReluMaxPoolWindow(float top_left, float top_right, float bottom_left, float bottom_right,
                       float& output, uint8_t& argmax) {
  // `value != value` is true only for NaN.
  const bool take_top_right = top_right > top_left || top_right != top_right;
  const float top = take_top_right ? top_right : top_left;
  const bool take_bottom_right = bottom_right > bottom_left || bottom_right != bottom_right;
  const float bottom = take_bottom_right ? bottom_right : bottom_left;
  const bool take_bottom = bottom > top || bottom != bottom;
  const float best = take_bottom ? bottom : top;
  const int index = take_bottom ? 2 + int{take_bottom_right} : int{take_top_right};
  const bool positive = best > 0.0f || best != best;
  output = positive ? best : 0.0f;
  argmax = static_cast<uint8_t>(positive ? index : kNoGradient);
}

#if defined(__SSE2__)
__m128 Select(__m128 mask, __m128 if_true, __m128 if_false) {
  return _mm_or_ps(_mm_and_ps(mask, if_true), _mm_andnot_ps(mask, if_false));
}

__m128i Select(__m128i mask, __m128i if_true, __m128i if_false) {
  return _mm_or_si128(_mm_and_si128(mask, if_true), _mm_andnot_si128(mask, if_false));
}

// Lanes where `candidate` replaces `best` as the maximum: it is greater or NaN.
__m128 Replaces(__m128 candidate, __m128 best) {
  return _mm_or_ps(_mm_cmpgt_ps(candidate, best), _mm_cmpunord_ps(candidate, candidate));
}

// ReluMaxPoolWindow for 4 adjacent windows, whose input rows start at `top` and `bottom`.
void ReluMaxPoolWindows4(const float* top, const float* bottom, float* output, uint8_t* argmax) {
  const __m128 top_low = _mm_loadu_ps(top);
  const __m128 top_high = _mm_loadu_ps(top + 4);
  const __m128 bottom_low = _mm_loadu_ps(bottom);
  const __m128 bottom_high = _mm_loadu_ps(bottom + 4);
  // Even input columns are the windows' left pixels, odd columns their right pixels.
  const __m128 top_left = _mm_shuffle_ps(top_low, top_high, _MM_SHUFFLE(2, 0, 2, 0));
  const __m128 top_right = _mm_shuffle_ps(top_low, top_high, _MM_SHUFFLE(3, 1, 3, 1));
  const __m128 bottom_left = _mm_shuffle_ps(bottom_low, bottom_high, _MM_SHUFFLE(2, 0, 2, 0));
  const __m128 bottom_right = _mm_shuffle_ps(bottom_low, bottom_high, _MM_SHUFFLE(3, 1, 3, 1));

  const __m128 take_top_right = Replaces(top_right, top_left);
  const __m128 top_best = Select(take_top_right, top_right, top_left);
  const __m128 take_bottom_right = Replaces(bottom_right, bottom_left);
  const __m128 bottom_best = Select(take_bottom_right, bottom_right, bottom_left);
  const __m128 take_bottom = Replaces(bottom_best, top_best);
  const __m128 best = Select(take_bottom, bottom_best, top_best);
  const __m128 positive = Replaces(best, _mm_setzero_ps());

  const __m128i one = _mm_set1_epi32(1);
  const __m128i top_index = _mm_and_si128(_mm_castps_si128(take_top_right), one);
  const __m128i bottom_index =
      _mm_add_epi32(_mm_and_si128(_mm_castps_si128(take_bottom_right), one), _mm_set1_epi32(2));
  const __m128i index = Select(_mm_castps_si128(take_bottom), bottom_index, top_index);
  const __m128i code = Select(_mm_castps_si128(positive), index, _mm_set1_epi32(kNoGradient));
  _mm_storeu_ps(output, _mm_and_ps(positive, best));
  const __m128i code_bytes = _mm_packus_epi16(_mm_packs_epi32(code, code), _mm_setzero_si128());
  const int32_t packed = _mm_cvtsi128_si32(code_bytes);
  std::memcpy(argmax, &packed, sizeof(packed));
}

// Scatters the gradients of 4 adjacent windows to their argmax positions and zeros elsewhere.
void ReluMaxPoolBackwardWindows4(const float* grad_output, const uint8_t* argmax, float* grad_top,
                                 float* grad_bottom) {
  const __m128 grad = _mm_loadu_ps(grad_output);
  int32_t packed = 0;
  std::memcpy(&packed, argmax, sizeof(packed));
  const __m128i zero = _mm_setzero_si128();
  const __m128i code = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(packed), zero), zero);
  const auto grad_at = [&](int position) {
    return _mm_and_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(code, _mm_set1_epi32(position))), grad);
  };
  const __m128 top_left = grad_at(0);
  const __m128 top_right = grad_at(1);
  const __m128 bottom_left = grad_at(2);
  const __m128 bottom_right = grad_at(3);
  _mm_storeu_ps(grad_top, _mm_unpacklo_ps(top_left, top_right));
  _mm_storeu_ps(grad_top + 4, _mm_unpackhi_ps(top_left, top_right));
  _mm_storeu_ps(grad_bottom, _mm_unpacklo_ps(bottom_left, bottom_right));
  _mm_storeu_ps(grad_bottom + 4, _mm_unpackhi_ps(bottom_left, bottom_right));
}
#endif

// Pools one output row of `out_width` windows from the input rows `top` and `bottom`.
void ReluMaxPoolRow(const float* top, const float* bottom, int64_t out_width, float* output,
                    uint8_t* argmax) {
  int64_t x = 0;
#if defined(__SSE2__)
  if (out_width >= 4) {
    // When out_width is not a multiple of 4 the last group overlaps the one before it and
    // recomputes a few windows with the same results.
    for (;; x += 4) {
      x = std::min(x, out_width - 4);
      ReluMaxPoolWindows4(top + 2 * x, bottom + 2 * x, output + x, argmax + x);
      if (x == out_width - 4) return;
    }
  }
#endif
  for (; x < out_width; ++x) {
    ReluMaxPoolWindow(top[2 * x], top[2 * x + 1], bottom[2 * x], bottom[2 * x + 1], output[x],
                      argmax[x]);
  }
}

void ReluMaxPoolBackwardRow(const float* grad_output, const uint8_t* argmax, int64_t out_width,
                            float* grad_top, float* grad_bottom) {
  int64_t x = 0;
#if defined(__SSE2__)
  if (out_width >= 4) {
    for (;; x += 4) {
      x = std::min(x, out_width - 4);
      ReluMaxPoolBackwardWindows4(grad_output + x, argmax + x, grad_top + 2 * x,
                                  grad_bottom + 2 * x);
      if (x == out_width - 4) return;
    }
  }
#endif
  for (; x < out_width; ++x) {
    const float grad = grad_output[x];
    grad_top[2 * x] = argmax[x] == 0 ? grad : 0.0f;
    grad_top[2 * x + 1] = argmax[x] == 1 ? grad : 0.0f;
    grad_bottom[2 * x] = argmax[x] == 2 ? grad : 0.0f;
    grad_bottom[2 * x + 1] = argmax[x] == 3 ? grad : 0.0f;
  }
}

// Both kernels run over the output rows of all planes, which are independent.
void ReluMaxPoolForwardCpu(const float* input, float* output, uint8_t* argmax, int64_t planes,
                           int64_t height, int64_t width) {
  const int64_t out_width = width / 2;
  at::parallel_for(0, planes * (height / 2), 64, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const float* top = input + 2 * row * width;
      ReluMaxPoolRow(top, top + width, out_width, output + row * out_width,
                     argmax + row * out_width);
    }
  });
}

void ReluMaxPoolBackwardCpu(const float* grad_output, const uint8_t* argmax, float* grad_input,
                            int64_t planes, int64_t height, int64_t width) {
  const int64_t out_width = width / 2;
  at::parallel_for(0, planes * (height / 2), 64, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      float* grad_top = grad_input + 2 * row * width;
      ReluMaxPoolBackwardRow(grad_output + row * out_width, argmax + row * out_width, out_width,
                             grad_top, grad_top + width);
    }
  });
}

class ReluMaxPoolFunction : public torch::autograd::Function<ReluMaxPoolFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* context,
                               const torch::Tensor& input) {
    const int64_t planes = input.size(0) * input.size(1);
    const int64_t height = input.size(2);
    const int64_t width = input.size(3);
    torch::Tensor output =
        torch::empty({input.size(0), input.size(1), height / 2, width / 2}, input.options());
    torch::Tensor argmax = torch::empty(output.sizes(), input.options().dtype(torch::kUInt8));
    ReluMaxPoolForwardCpu(input.data_ptr<float>(), output.data_ptr<float>(),
                          argmax.data_ptr<uint8_t>(), planes, height, width);
    context->saved_data["argmax"] = argmax;
    context->saved_data["input_sizes"] = input.sizes();
    return output;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list grad_outputs) {
    const torch::Tensor argmax = context->saved_data["argmax"].toTensor();
    const std::vector<int64_t> input_sizes = context->saved_data["input_sizes"].toIntVector();
    const torch::Tensor grad_output = grad_outputs[0].contiguous();
    torch::Tensor grad_input = torch::empty(input_sizes, grad_output.options());
    ReluMaxPoolBackwardCpu(grad_output.data_ptr<float>(), argmax.data_ptr<uint8_t>(),
                           grad_input.data_ptr<float>(), input_sizes[0] * input_sizes[1],
                           input_sizes[2], input_sizes[3]);
    return {grad_input};
  }
};

bool CanFuseAdam(const torch::Tensor& parameter, const torch::optim::AdamOptions& options) {
  const torch::Tensor& grad = parameter.grad();
  return parameter.device().is_cpu() && parameter.scalar_type() == torch::kFloat &&
         parameter.is_contiguous() && grad.is_contiguous() && grad.scalar_type() == torch::kFloat &&
         !grad.is_sparse() && options.weight_decay() == 0 && !options.amsgrad();
}

// Applies one Adam update to a float parameter in a single pass over its elements.
void FusedAdamUpdate(torch::Tensor& parameter, torch::optim::AdamParamState& state,
                     const torch::optim::AdamOptions& options) {
  state.step(state.step() + 1);
  internal::AdamUpdate(parameter.data_ptr<float>(), parameter.grad().data_ptr<float>(),
                       state.exp_avg().data_ptr<float>(), state.exp_avg_sq().data_ptr<float>(),
                       parameter.numel(), options.lr(), state.step(), options);
}

}  // namespace

torch::Tensor ReluMaxPool2x2(const torch::Tensor& input) {
  const bool fusable = input.device().is_cpu() && input.scalar_type() == torch::kFloat &&
                       input.dim() == 4 && input.is_contiguous() && input.size(2) % 2 == 0 &&
                       input.size(3) % 2 == 0;
  if (!fusable) return torch::relu(torch::max_pool2d(input, 2));
  return ReluMaxPoolFunction::apply(input);
}

torch::Tensor FusedAdam::step(LossClosure closure) {
  for (const torch::optim::OptimizerParamGroup& group : param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    for (const torch::Tensor& parameter : group.params()) {
      if (parameter.grad().defined() && !CanFuseAdam(parameter, options)) {
        return torch::optim::Adam::step(std::move(closure));
      }
    }
  }

  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (torch::optim::OptimizerParamGroup& group : param_groups()) {
    const auto& options = static_cast<const torch::optim::AdamOptions&>(group.options());
    for (torch::Tensor& parameter : group.params()) {
      if (!parameter.grad().defined()) continue;
      // The key under which torch::optim::Adam stores a parameter's state.
      std::unique_ptr<torch::optim::OptimizerParamState>& slot =
          state_[c10::guts::to_string(parameter.unsafeGetTensorImpl())];
      if (slot == nullptr) {
        auto state = std::make_unique<torch::optim::AdamParamState>();
        state->step(0);
        state->exp_avg(torch::zeros_like(parameter, torch::MemoryFormat::Preserve));
        state->exp_avg_sq(torch::zeros_like(parameter, torch::MemoryFormat::Preserve));
        slot = std::move(state);
      }
      FusedAdamUpdate(parameter, static_cast<torch::optim::AdamParamState&>(*slot), options);
    }
  }
  return loss;
}

LeNetImpl::LeNetImpl(const Hyperparameters& hyperparameters)
    : drop_probability_(1.0 - hyperparameters.keep_prob) {
  constexpr int64_t kKernel = 5;
  constexpr int64_t kPadding = 2;
  conv1_ = register_module(
      "conv1",
      torch::nn::Conv2d(
          torch::nn::Conv2dOptions(1, hyperparameters.conv1_depth, kKernel).padding(kPadding)));
  conv2_ = register_module(
      "conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(hyperparameters.conv1_depth,
                                                          hyperparameters.conv2_depth, kKernel)
                                     .padding(kPadding)));
  // Two 2x2 poolings shrink the 28x28 image to 7x7.
  const int64_t flat_size = hyperparameters.conv2_depth * (kImageSide / 4) * (kImageSide / 4);
  dense_ =
      register_module("dense", torch::nn::Linear(flat_size, hyperparameters.dense_layer_units));
  output_ =
      register_module("output", torch::nn::Linear(hyperparameters.dense_layer_units, kNumClasses));
}

torch::Tensor LeNetImpl::forward(const torch::Tensor& images) {
  torch::Tensor x = ReluMaxPool2x2(conv1_->forward(images));
  x = ReluMaxPool2x2(conv2_->forward(x));
  // In place is safe because the dense layer's backward does not read its output.
  x = dense_->forward(x.flatten(1)).relu_();
  if (drop_probability_ > 0) x = torch::dropout(x, drop_probability_, is_training());
  return output_->forward(x);
}

TensorDataset ToTensorDataset(const LabeledImages& data, int64_t begin, int64_t end,
                              const torch::Device& device) {
  const int64_t count = end - begin;
  // from_blob does not copy, and the conversions below copy before `data` can go away.
  const torch::Tensor pixels =
      torch::from_blob(const_cast<uint8_t*>(data.pixels.data() + begin * kImagePixels),
                       {count, 1, kImageSide, kImageSide}, torch::kUInt8);
  const torch::Tensor labels =
      torch::from_blob(const_cast<uint8_t*>(data.labels.data() + begin), {count}, torch::kUInt8);
  return TensorDataset{.images = pixels.to(torch::kFloat).div_(255.0).to(device),
                       .labels = labels.to(torch::kLong).to(device)};
}

namespace {

// Restores a module's training mode when it goes out of scope.
class TrainingModeRestorer {
 public:
  explicit TrainingModeRestorer(torch::nn::Module& module)
      : module_(module), was_training_(module.is_training()) {}
  ~TrainingModeRestorer() { module_.train(was_training_); }

 private:
  torch::nn::Module& module_;
  bool was_training_;
};

}  // namespace

Evaluation Evaluate(LeNet& model, const TensorDataset& data, int64_t batch_size) {
  const int64_t count = data.size();
  if (count == 0) return {};
  TrainingModeRestorer restorer(*model);
  model->eval();
  torch::NoGradGuard no_grad;

  const torch::TensorOptions options = data.images.options();
  torch::Tensor loss_sum = torch::zeros({}, options.dtype(torch::kDouble));
  torch::Tensor correct = torch::zeros({}, options.dtype(torch::kLong));
  for (int64_t begin = 0; begin < count; begin += batch_size) {
    const int64_t end = std::min(begin + batch_size, count);
    const torch::Tensor labels = data.labels.slice(0, begin, end);
    const torch::Tensor logits = model->forward(data.images.slice(0, begin, end));
    loss_sum.add_(torch::cross_entropy_loss(logits, labels, {}, at::Reduction::Sum));
    correct.add_(logits.argmax(1).eq(labels).sum());
  }
  return Evaluation{
      .loss = loss_sum.item<double>() / static_cast<double>(count),
      .accuracy = static_cast<double>(correct.item<int64_t>()) / static_cast<double>(count)};
}

namespace {

// Trains one trial on data already on the device. Use once.
class TrialRun {
 public:
  TrialRun(const TorchTrainerOptions& options, const DataSplits& data, torch::Device device,
           const TrialSpec& trial, TrainingObserver& observer)
      : options_(options),
        data_(data),
        device_(device),
        trial_(trial),
        hyperparameters_(trial.hyperparameters),
        observer_(observer),
        check_every_steps_(internal::CheckEverySteps(options)),
        eval_batch_size_(device.is_cuda() ? internal::kCudaEvalBatchSize
                                          : internal::kCpuEvalBatchSize),
        model_(MakeModel(trial, device)),
        parameters_(model_->parameters()),
        optimizer_(parameters_, torch::optim::AdamOptions(trial.hyperparameters.learning_rate)),
        order_generator_(internal::MakeOrderGenerator(trial.seed)) {
    const torch::TensorOptions scalar_options = torch::TensorOptions().device(device);
    interval_loss_sum_ = torch::zeros({}, scalar_options.dtype(torch::kDouble));
  }

  absl::StatusOr<TrainingResult> Run() {
    const Clock::time_point start = Clock::now();
    for (int32_t epoch = 1; epoch <= hyperparameters_.num_epochs && !result_.has_value(); ++epoch) {
      if (absl::Status status = RunEpoch(epoch); !status.ok()) return status;
    }
    const double train_seconds = Seconds(Clock::now() - start);

    TrainingResult result = result_.value_or(TrainingResult{});
    internal::AddSummaryMetrics(best_epoch_, best_validation_, train_seconds, result);
    if (result.outcome == TrainingOutcome::kCompleted) {
      RestoreBestState();
      internal::AddTestMetrics(Evaluate(model_, data_.test, eval_batch_size_), result);
    }
    result.checkpoint_path = checkpoint_path_;
    return result;
  }

 private:
  static LeNet MakeModel(const TrialSpec& trial, const torch::Device& device) {
    // Initialized on the CPU, so the same seed gives the same initial weights on any device.
    torch::manual_seed(trial.seed);
    LeNet model(trial.hyperparameters);
    model->to(device);
    return model;
  }

  // Trains one epoch, validates and reports the epoch's metrics. Sets result_ when
  // training stopped or diverged.
  absl::Status RunEpoch(int32_t epoch) {
    const Clock::time_point epoch_start = Clock::now();
    const std::optional<EpochTraining> training = TrainEpoch(epoch);
    if (!training.has_value()) return absl::OkStatus();
    const double train_seconds = Seconds(Clock::now() - epoch_start);

    const Evaluation validation = Evaluate(model_, data_.validation, eval_batch_size_);
    if (best_epoch_ == 0 || validation.accuracy > best_validation_.accuracy) {
      best_epoch_ = epoch;
      best_validation_ = validation;
      SaveBestState();
      if (absl::Status status = WriteCheckpoint(); !status.ok()) return status;
    }

    internal::ReportEpochMetrics(observer_, epoch, step_, *training, validation,
                                 static_cast<double>(data_.train.size()) / train_seconds,
                                 epoch_start);
    return absl::OkStatus();
  }

  // Runs the training steps of one epoch over the training set in a new random order.
  // Returns nothing, with result_ set, when training stopped or diverged.
  std::optional<EpochTraining> TrainEpoch(int32_t epoch) {
    const int64_t count = data_.train.size();
    const torch::Tensor order = torch::randperm(count, order_generator_, torch::kLong).to(device_);
    torch::Tensor noise;
    if (hyperparameters_.augmentation != Augmentation::kNone) {
      noise = DrawAugmentationNoise(count, order_generator_).to(device_);
    }
    torch::Tensor loss_sum = torch::zeros({}, torch::TensorOptions(device_).dtype(torch::kDouble));
    torch::Tensor correct = torch::zeros({}, torch::TensorOptions(device_).dtype(torch::kLong));

    model_->train();
    for (int64_t begin = 0; begin < count; begin += hyperparameters_.batch_size) {
      const int64_t end = std::min(begin + hyperparameters_.batch_size, count);
      const torch::Tensor indices = order.slice(0, begin, end);
      torch::Tensor images = data_.train.images.index_select(0, indices);
      const torch::Tensor labels = data_.train.labels.index_select(0, indices);
      if (noise.defined()) {
        images = AugmentImages(images, noise.slice(0, begin, end), hyperparameters_.augmentation);
      }
      const torch::Tensor logits = TrainStep(images, labels);
      loss_sum.add_(last_loss_, static_cast<double>(end - begin));
      correct.add_(logits.argmax(1).eq(labels).sum());

      if (step_ % check_every_steps_ == 0 && !CheckInterval(epoch)) return std::nullopt;
      if (observer_.StopRequested()) {
        End(TrainingOutcome::kStopped, internal::StoppedMessage(epoch, step_));
        return std::nullopt;
      }
    }

    // Reading the sums back waits for the device, so the epoch's time includes all its work.
    const EpochTraining training{
        .loss = loss_sum.item<double>() / static_cast<double>(count),
        .accuracy = static_cast<double>(correct.item<int64_t>()) / static_cast<double>(count)};
    if (!std::isfinite(training.loss)) {
      Diverge(training.loss, epoch);
      return std::nullopt;
    }
    return training;
  }

  // Runs forward, backward and the optimizer on one batch without waiting for the device.
  // Stores the detached loss in last_loss_ and returns the detached logits.
  torch::Tensor TrainStep(const torch::Tensor& images, const torch::Tensor& labels) {
    const torch::Tensor logits = model_->forward(images);
    const torch::Tensor loss = torch::cross_entropy_loss(logits, labels);
    // Dropping the gradients instead of zeroing them lets backward write them directly.
    for (torch::Tensor& parameter : parameters_) parameter.mutable_grad().reset();
    loss.backward();
    optimizer_.step();
    ++step_;
    last_loss_ = loss.detach();
    interval_loss_sum_.add_(last_loss_);
    return logits.detach();
  }

  // Reads back the mean loss of the steps since the last check, reports it as
  // step_train_loss when step metrics are on, and returns false when it is not finite.
  bool CheckInterval(int32_t epoch) {
    const double mean_loss =
        interval_loss_sum_.item<double>() / static_cast<double>(check_every_steps_);
    interval_loss_sum_.zero_();
    if (!std::isfinite(mean_loss)) {
      Diverge(mean_loss, epoch);
      return false;
    }
    if (options_.log_every_steps > 0) {
      observer_.OnMetric(epoch, step_, "step_train_loss", mean_loss);
    }
    return true;
  }

  void Diverge(double loss, int32_t epoch) {
    End(TrainingOutcome::kDiverged, internal::DivergedMessage(loss, epoch, step_));
  }

  void End(TrainingOutcome outcome, std::string message) {
    result_ = TrainingResult{.outcome = outcome, .message = std::move(message)};
  }

  // Copies the parameters and buffers into best_state_, allocating it on first use.
  void SaveBestState() {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> tensors = ModelTensors();
    if (best_state_.empty()) {
      for (const torch::Tensor& tensor : tensors) best_state_.push_back(tensor.clone());
      return;
    }
    for (size_t i = 0; i < tensors.size(); ++i) best_state_[i].copy_(tensors[i]);
  }

  void RestoreBestState() {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> tensors = ModelTensors();
    for (size_t i = 0; i < tensors.size() && i < best_state_.size(); ++i) {
      tensors[i].copy_(best_state_[i]);
    }
  }

  std::vector<torch::Tensor> ModelTensors() {
    std::vector<torch::Tensor> tensors = model_->parameters();
    for (const torch::Tensor& buffer : model_->buffers()) tensors.push_back(buffer);
    return tensors;
  }

  // Writes the model and the optimizer state, as they are now, to
  // <artifacts_dir>/trial-<id>-attempt-<n>/best.pt when artifacts_dir is set. The file is
  // a torch::serialize archive with nested archives "model" and "optimizer".
  absl::Status WriteCheckpoint() {
    if (options_.artifacts_dir.empty()) return absl::OkStatus();
    torch::serialize::OutputArchive model_archive;
    model_->save(model_archive);
    torch::serialize::OutputArchive optimizer_archive;
    optimizer_.save(optimizer_archive);
    torch::serialize::OutputArchive archive;
    archive.write("model", model_archive);
    archive.write("optimizer", optimizer_archive);
    absl::StatusOr<std::string> path =
        internal::SaveCheckpoint(archive, options_.artifacts_dir, trial_);
    if (!path.ok()) return path.status();
    checkpoint_path_ = *std::move(path);
    return absl::OkStatus();
  }

  const TorchTrainerOptions& options_;
  const DataSplits& data_;
  const torch::Device device_;
  const TrialSpec& trial_;
  const Hyperparameters& hyperparameters_;
  TrainingObserver& observer_;
  const int64_t check_every_steps_;
  const int64_t eval_batch_size_;
  LeNet model_;
  std::vector<torch::Tensor> parameters_;
  FusedAdam optimizer_;
  at::Generator order_generator_;

  int64_t step_ = 0;
  torch::Tensor last_loss_;
  torch::Tensor interval_loss_sum_;
  int32_t best_epoch_ = 0;
  Evaluation best_validation_;
  std::vector<torch::Tensor> best_state_;
  std::string checkpoint_path_;
  // Set when training ended before the last epoch.
  std::optional<TrainingResult> result_;
};

// Names the BLAS library that provides libblas.so.3 in this process, from the real path of
// the loaded file (Debian installs alternatives under /usr/lib/<triplet>/<variant>/).
struct BlasInfo {
  std::string path;
  std::string name;
  bool reference = false;
};

int FindLibblas(dl_phdr_info* info, size_t /*size*/, void* data) {
  const absl::string_view name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  if (!absl::EndsWith(name, "/libblas.so.3")) return 0;
  *static_cast<std::string*>(data) = std::string(name);
  return 1;
}

BlasInfo DescribeBlas() {
  std::string loaded;
  dl_iterate_phdr(FindLibblas, &loaded);
  if (loaded.empty()) return BlasInfo{.path = "", .name = "unknown (libblas.so.3 is not loaded)"};
  std::error_code error;
  const std::filesystem::path real = std::filesystem::canonical(loaded, error);
  const std::string path = error ? loaded : real.string();
  const std::string directory = std::filesystem::path(path).parent_path().filename().string();
  BlasInfo info{.path = path, .name = directory};
  if (absl::StrContains(path, "openblas")) {
    info.name = absl::StrCat("OpenBLAS (", directory, ")");
  } else if (absl::StrContains(path, "blis")) {
    info.name = absl::StrCat("BLIS (", directory, ")");
  } else if (absl::StrContains(path, "mkl")) {
    info.name = "Intel MKL";
  } else if (absl::StrContains(path, "atlas")) {
    info.name = "ATLAS";
  } else if (directory == "blas") {
    info.name = "reference BLAS";
    info.reference = true;
  }
  return info;
}

class TorchTrainer final : public Trainer {
 public:
  TorchTrainer(TorchTrainerOptions options, torch::Device device, int threads)
      : options_(std::move(options)), device_(device), threads_(threads) {
    // A stream of its own lets trainers on several threads share a GPU concurrently;
    // on the default stream their kernels would run one after another.
    if (device_.is_cuda()) {
      stream_ = c10::impl::getDeviceGuardImpl(device_.type())->getStreamFromGlobalPool(device_);
    }
  }

  absl::StatusOr<TrainingResult> Train(const TrialSpec& trial,
                                       TrainingObserver& observer) override {
    try {
      return TrainOrThrow(trial, observer);
    } catch (const std::exception&) {
      return internal::CurrentExceptionToStatus(
          absl::StrCat("trial ", trial.trial_id, " attempt ", trial.attempt));
    }
  }

  std::string device() const override { return device_.str(); }

 private:
  absl::StatusOr<TrainingResult> TrainOrThrow(const TrialSpec& trial, TrainingObserver& observer) {
    if (absl::Status status = internal::ValidateHyperparameters(trial.hyperparameters);
        !status.ok()) {
      return status;
    }
    std::optional<c10::StreamGuard> stream_guard;
    if (stream_.has_value()) stream_guard.emplace(*stream_);
    if (absl::Status status = internal::LoadDataOnce(options_, device_, "", data_); !status.ok()) {
      return status;
    }
    // The OpenMP thread count is per thread, and Train may run on a thread other than the
    // one that created the trainer.
    torch::set_num_threads(threads_);
    TrialRun run(options_, *data_, device_, trial, observer);
    return run.Run();
  }

  const TorchTrainerOptions options_;
  const torch::Device device_;
  const int threads_;
  // NOTE: the CUDA path (this stream, the unfused LibTorch operators and the evaluation
  // batch size) is written for CUDA but has not run on a GPU.
  std::optional<c10::Stream> stream_;
  std::optional<DataSplits> data_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Trainer>> MakeTorchTrainer(const TorchTrainerOptions& options) {
  absl::StatusOr<internal::DeviceAndThreads> configured = internal::ConfigureLibTorch(options);
  if (!configured.ok()) return configured.status();
  const auto [device, threads] = *configured;

  const BlasInfo blas = DescribeBlas();
  spdlog::info("torch trainer: device={} threads={} blas=\"{}\" blas_path={}", device.str(),
               threads, blas.name, blas.path);
  if (blas.reference && device.is_cpu()) {
    spdlog::warn(
        "torch trainer: dense layers use the unoptimised reference BLAS {}; install OpenBLAS "
        "with `apt-get install libopenblas0-openmp` to train several times faster",
        blas.path);
  }
  return std::make_unique<TorchTrainer>(options, device, threads);
}

}  // namespace sweep::worker
