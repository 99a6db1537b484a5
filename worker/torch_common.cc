#include "worker/torch_common.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/hyperparameters.h"
#include "worker/idx_reader.h"
#include "worker/lenet.h"
#include "worker/trainer.h"

namespace sweep::worker::internal {
namespace {

// Steps between divergence checks when step metrics are off.
constexpr int64_t kDefaultCheckEverySteps = 50;

// Mixed into the trial seed for the generator of batch order and augmentation, so that
// it draws a different stream from weight initialization and dropout.
constexpr uint64_t kOrderSeedMix = 0x9e3779b97f4a7c15;

absl::StatusOr<torch::Device> ResolveDevice(const std::string& requested) {
  if (requested == "auto") {
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, 0)
                                       : torch::Device(torch::kCPU);
  }
  std::optional<torch::Device> device;
  try {
    device.emplace(requested);
  } catch (const c10::Error&) {
    return absl::InvalidArgumentError(
        absl::StrCat("device \"", requested, "\" is invalid; use auto, cpu, cuda or cuda:N"));
  }
  if (device->is_cpu()) return torch::Device(torch::kCPU);
  if (!device->is_cuda()) {
    return absl::InvalidArgumentError(
        absl::StrCat("device \"", requested, "\" is not supported; use auto, cpu, cuda or cuda:N"));
  }
  const int64_t cuda_devices = static_cast<int64_t>(torch::cuda::device_count());
  const int64_t index = device->has_index() ? device->index() : 0;
  if (index >= cuda_devices) {
    return absl::FailedPreconditionError(absl::StrCat("device \"", requested,
                                                      "\" is unavailable: LibTorch sees ",
                                                      cuda_devices, " CUDA devices"));
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

// Constants of one Adam step, in float like the tensors they apply to.
struct AdamStep {
  float beta1;
  float beta2;
  float one_minus_beta1;
  float one_minus_beta2;
  float step_size;
  float sqrt_bias_correction2;
  float eps;
};

// Updates elements [begin, end) of a parameter and its moments. The SSE2 loop runs on every
// x86-64 CPU and gives the same results as the scalar loop, which handles other CPUs and the
// last elements. GCC 12 does not vectorize the scalar loop because std::sqrt may set errno.
void AdamUpdateRange(const AdamStep& step, int64_t begin, int64_t end, const float* grads,
                     float* values, float* exp_avg, float* exp_avg_sq) {
  int64_t i = begin;
#if defined(__SSE2__)
  const __m128 beta1 = _mm_set1_ps(step.beta1);
  const __m128 beta2 = _mm_set1_ps(step.beta2);
  const __m128 one_minus_beta1 = _mm_set1_ps(step.one_minus_beta1);
  const __m128 one_minus_beta2 = _mm_set1_ps(step.one_minus_beta2);
  const __m128 step_size = _mm_set1_ps(step.step_size);
  const __m128 sqrt_bias_correction2 = _mm_set1_ps(step.sqrt_bias_correction2);
  const __m128 eps = _mm_set1_ps(step.eps);
  for (; i + 4 <= end; i += 4) {
    const __m128 grad = _mm_loadu_ps(grads + i);
    const __m128 m =
        _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(exp_avg + i), beta1), _mm_mul_ps(one_minus_beta1, grad));
    const __m128 v = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(exp_avg_sq + i), beta2),
                                _mm_mul_ps(_mm_mul_ps(one_minus_beta2, grad), grad));
    _mm_storeu_ps(exp_avg + i, m);
    _mm_storeu_ps(exp_avg_sq + i, v);
    const __m128 denominator = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(v), sqrt_bias_correction2), eps);
    _mm_storeu_ps(values + i, _mm_sub_ps(_mm_loadu_ps(values + i),
                                         _mm_mul_ps(step_size, _mm_div_ps(m, denominator))));
  }
#endif
  for (; i < end; ++i) {
    const float grad = grads[i];
    const float m = exp_avg[i] * step.beta1 + step.one_minus_beta1 * grad;
    const float v = exp_avg_sq[i] * step.beta2 + step.one_minus_beta2 * grad * grad;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    values[i] -= step.step_size * (m / (std::sqrt(v) / step.sqrt_bias_correction2 + step.eps));
  }
}

}  // namespace

double Seconds(Clock::duration duration) { return std::chrono::duration<double>(duration).count(); }

absl::StatusOr<DeviceAndThreads> ConfigureLibTorch(const TorchTrainerOptions& options) {
  if (options.max_train_images < 0 || options.max_test_images < 0 || options.threads < 0 ||
      options.log_every_steps < 0) {
    return absl::InvalidArgumentError(
        "max_train_images, max_test_images, threads and log_every_steps must not be negative");
  }
  absl::StatusOr<torch::Device> device = ResolveDevice(options.device);
  if (!device.ok()) return device.status();
  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  return DeviceAndThreads{.device = *device, .threads = threads};
}

absl::Status ValidateHyperparameters(const Hyperparameters& hyperparameters) {
  for (const auto& [name, value] :
       {std::pair<absl::string_view, int64_t>{"conv1_depth", hyperparameters.conv1_depth},
        {"conv2_depth", hyperparameters.conv2_depth},
        {"dense_layer_units", hyperparameters.dense_layer_units},
        {"batch_size", hyperparameters.batch_size},
        {"num_epochs", hyperparameters.num_epochs}}) {
    if (value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("hyperparameter \"", name, "\": value ", value, " is not positive"));
    }
  }
  if (!(hyperparameters.keep_prob > 0 && hyperparameters.keep_prob <= 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hyperparameter \"keep_prob\": value ", hyperparameters.keep_prob, " is outside (0, 1]"));
  }
  if (!(hyperparameters.learning_rate > 0 && std::isfinite(hyperparameters.learning_rate))) {
    return absl::InvalidArgumentError(absl::StrCat("hyperparameter \"learning_rate\": value ",
                                                   hyperparameters.learning_rate,
                                                   " is not a positive finite number"));
  }
  return absl::OkStatus();
}

absl::Status LoadDataOnce(const TorchTrainerOptions& options, const torch::Device& device,
                          std::string_view log_prefix, std::optional<DataSplits>& data) {
  if (data.has_value()) return absl::OkStatus();
  const Clock::time_point start = Clock::now();
  absl::StatusOr<FashionMnist> read = ReadFashionMnist(options.data_dir);
  if (!read.ok()) return read.status();

  const int64_t available = read->train.size();
  const int64_t used =
      options.max_train_images > 0 ? std::min(options.max_train_images, available) : available;
  if (options.validation_images < 1 || options.validation_images >= used) {
    return absl::InvalidArgumentError(absl::StrCat(
        "validation_images ", options.validation_images, " must be at least 1 and less than ",
        "the ", used, " training images in use; lower it or raise max_train_images"));
  }
  const int64_t test_used = options.max_test_images > 0
                                ? std::min(options.max_test_images, read->test.size())
                                : read->test.size();
  const int64_t train_end = used - options.validation_images;
  data = DataSplits{.train = ToTensorDataset(read->train, 0, train_end, device),
                    .validation = ToTensorDataset(read->train, train_end, used, device),
                    .test = ToTensorDataset(read->test, 0, test_used, device)};
  spdlog::info(
      "{}loaded Fashion-MNIST from {}: {} training, {} validation, {} test images in {:.2f} s",
      log_prefix, options.data_dir.string(), train_end, options.validation_images, test_used,
      Seconds(Clock::now() - start));
  return absl::OkStatus();
}

int64_t CheckEverySteps(const TorchTrainerOptions& options) {
  return options.log_every_steps > 0 ? options.log_every_steps : kDefaultCheckEverySteps;
}

at::Generator MakeOrderGenerator(uint64_t seed) {
  return at::make_generator<at::CPUGeneratorImpl>(seed ^ kOrderSeedMix);
}

void ReportEpochMetrics(TrainingObserver& observer, int32_t epoch, int64_t step,
                        const EpochTraining& training, const Evaluation& validation,
                        double images_per_second, Clock::time_point epoch_start) {
  observer.OnMetric(epoch, step, "train_loss", training.loss);
  observer.OnMetric(epoch, step, "train_accuracy", training.accuracy);
  observer.OnMetric(epoch, step, "val_loss", validation.loss);
  observer.OnMetric(epoch, step, "val_accuracy", validation.accuracy);
  observer.OnMetric(epoch, step, "epoch_seconds", Seconds(Clock::now() - epoch_start));
  observer.OnMetric(epoch, step, "images_per_second", images_per_second);
}

void AddSummaryMetrics(int32_t best_epoch, const Evaluation& best_validation, double train_seconds,
                       TrainingResult& result) {
  if (best_epoch > 0) {
    result.final_metrics.emplace_back("best_val_accuracy", best_validation.accuracy);
    result.final_metrics.emplace_back("best_val_loss", best_validation.loss);
    result.final_metrics.emplace_back("best_epoch", best_epoch);
  }
  result.final_metrics.emplace_back("train_seconds", train_seconds);
}

void AddTestMetrics(const Evaluation& test, TrainingResult& result) {
  result.final_metrics.emplace_back("test_loss", test.loss);
  result.final_metrics.emplace_back("test_accuracy", test.accuracy);
}

std::string StoppedMessage(int32_t epoch, int64_t step) {
  return absl::StrCat("stopped at epoch ", epoch, " step ", step);
}

std::string DivergedMessage(double loss, int32_t epoch, int64_t step) {
  return absl::StrCat("diverged: train loss is ", std::isnan(loss) ? "nan" : "inf", " at epoch ",
                      epoch, " step ", step);
}

absl::StatusOr<std::string> SaveCheckpoint(torch::serialize::OutputArchive& archive,
                                           const std::filesystem::path& artifacts_dir,
                                           const TrialSpec& trial) {
  const std::filesystem::path dir =
      artifacts_dir / absl::StrCat("trial-", trial.trial_id, "-attempt-", trial.attempt);
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir.string(), ": cannot create the checkpoint directory: ", error.message()));
  }

  const std::filesystem::path path = dir / "best.pt";
  const std::filesystem::path partial_path = dir / "best.pt.partial";
  archive.save_to(partial_path.string());
  std::filesystem::rename(partial_path, path, error);
  if (error) {
    return absl::FailedPreconditionError(
        absl::StrCat(path.string(), ": cannot write the checkpoint: ", error.message()));
  }
  return path.string();
}

void AdamUpdate(float* values, const float* grads, float* exp_avg, float* exp_avg_sq, int64_t size,
                double learning_rate, int64_t step, const torch::optim::AdamOptions& options) {
  const double beta1 = std::get<0>(options.betas());
  const double beta2 = std::get<1>(options.betas());
  const double bias_correction1 = 1 - std::pow(beta1, step);
  const double bias_correction2 = 1 - std::pow(beta2, step);
  const AdamStep adam_step{.beta1 = static_cast<float>(beta1),
                           .beta2 = static_cast<float>(beta2),
                           .one_minus_beta1 = static_cast<float>(1 - beta1),
                           .one_minus_beta2 = static_cast<float>(1 - beta2),
                           .step_size = static_cast<float>(learning_rate / bias_correction1),
                           .sqrt_bias_correction2 = static_cast<float>(std::sqrt(bias_correction2)),
                           .eps = static_cast<float>(options.eps())};
  at::parallel_for(0, size, 1 << 15, [&](int64_t begin, int64_t end) {
    AdamUpdateRange(adam_step, begin, end, grads, values, exp_avg, exp_avg_sq);
  });
}

absl::Status CurrentExceptionToStatus(absl::string_view subject) {
  try {
    throw;
  } catch (const c10::Error& error) {
    const std::string message = error.what_without_backtrace();
    if (dynamic_cast<const c10::OutOfMemoryError*>(&error) != nullptr ||
        absl::StrContains(message, "can't allocate memory")) {
      return absl::ResourceExhaustedError(absl::StrCat(subject, ": out of memory: ", message));
    }
    return absl::InternalError(absl::StrCat(subject, ": LibTorch error: ", message));
  } catch (const std::bad_alloc& error) {
    return absl::ResourceExhaustedError(absl::StrCat(subject, ": out of memory: ", error.what()));
  } catch (const std::exception& error) {
    return absl::InternalError(absl::StrCat(subject, ": ", error.what()));
  }
}

}  // namespace sweep::worker::internal
