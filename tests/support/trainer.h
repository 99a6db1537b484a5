#ifndef SWEEP_TESTS_SUPPORT_TRAINER_H_
#define SWEEP_TESTS_SUPPORT_TRAINER_H_

// Helpers for the tests of the LibTorch trainers (tests/trainer_test.cc and
// tests/fused_trainer_test.cc): small models and data sets, an observer that records
// metrics, and checkpoint loading. The header has no source file and includes LibTorch, so
// only tests that link sweep_trainer and LibTorch include it.

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/hyperparameters.h"
#include "worker/fused_trainer.h"
#include "worker/idx_reader.h"
#include "worker/lenet.h"
#include "worker/trainer.h"

namespace sweep::testing {

// Returns the hyperparameters of a LeNet small enough to train a few thousand images in
// about a second on one CPU core.
inline Hyperparameters SmallHyperparameters(int64_t num_epochs) {
  Hyperparameters hyperparameters;
  hyperparameters.conv1_depth = 8;
  hyperparameters.conv2_depth = 16;
  hyperparameters.dense_layer_units = 64;
  hyperparameters.batch_size = 64;
  hyperparameters.num_epochs = num_epochs;
  hyperparameters.learning_rate = 2e-3;
  return hyperparameters;
}

// Returns trainer options for the real Fashion-MNIST files on the CPU with one thread. The
// trainer uses the first `max_train_images` training images, the last 500 of them for
// validation, and the first `max_test_images` test images. Step metrics come every 5 steps.
inline worker::TorchTrainerOptions SmallTrainerOptions(int64_t max_train_images,
                                                       int64_t max_test_images) {
  worker::TorchTrainerOptions options;
  options.data_dir = SWEEP_FASHION_MNIST_DIR;
  options.device = "cpu";
  options.max_train_images = max_train_images;
  options.validation_images = 500;
  options.max_test_images = max_test_images;
  // One thread keeps the tests fast when other processes share the cores.
  options.threads = 1;
  options.log_every_steps = 5;
  return options;
}

struct Metric {
  int32_t epoch = 0;
  int64_t step = 0;
  std::string name;
  double value = 0;

  bool operator==(const Metric&) const = default;
};

inline std::ostream& operator<<(std::ostream& stream, const Metric& metric) {
  return stream << "{epoch " << metric.epoch << ", step " << metric.step << ", " << metric.name
                << "=" << metric.value << "}";
}

// Records every metric. Requests a stop at the poll numbered `stop_at_poll` (from 1).
class RecordingObserver final : public worker::TrainingObserver {
 public:
  explicit RecordingObserver(int64_t stop_at_poll = 0) : stop_at_poll_(stop_at_poll) {}

  void OnMetric(int32_t epoch, int64_t step, std::string_view name, double value) override {
    metrics.push_back(Metric{epoch, step, std::string(name), value});
  }
  bool StopRequested() override {
    ++polls;
    return stop_at_poll_ > 0 && polls >= stop_at_poll_;
  }

  // Returns the metrics other than epoch_seconds and images_per_second, whose values
  // depend only on the seeds and the data.
  std::vector<Metric> DeterministicMetrics() const {
    std::vector<Metric> result;
    for (const Metric& metric : metrics) {
      if (metric.name == "epoch_seconds" || metric.name == "images_per_second") continue;
      result.push_back(metric);
    }
    return result;
  }

  std::vector<Metric> metrics;
  int64_t polls = 0;

 private:
  const int64_t stop_at_poll_;
};

inline std::map<std::string, double> FinalMetrics(const worker::TrainingResult& result) {
  std::map<std::string, double> metrics;
  for (const auto& [name, value] : result.final_metrics) metrics[name] = value;
  return metrics;
}

// Returns the final metrics without train_seconds, which depends on timing.
inline std::map<std::string, double> DeterministicFinalMetrics(
    const worker::TrainingResult& result) {
  std::map<std::string, double> metrics = FinalMetrics(result);
  metrics.erase("train_seconds");
  return metrics;
}

// MakeTrainer and MakeFused create a trainer from `options`. When creation fails, they fail
// the calling test with the status and return null.
inline std::unique_ptr<worker::Trainer> MakeTrainer(const worker::TorchTrainerOptions& options) {
  absl::StatusOr<std::unique_ptr<worker::Trainer>> trainer = worker::MakeTorchTrainer(options);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return trainer.ok() ? *std::move(trainer) : nullptr;
}
inline std::unique_ptr<worker::FusedTrainer> MakeFused(const worker::TorchTrainerOptions& options) {
  absl::StatusOr<std::unique_ptr<worker::FusedTrainer>> trainer = worker::MakeFusedTrainer(options);
  EXPECT_TRUE(trainer.ok()) << trainer.status();
  return trainer.ok() ? *std::move(trainer) : nullptr;
}

// Returns the Fashion-MNIST data set in SWEEP_FASHION_MNIST_DIR, read once per test binary.
// Fails the calling test and returns an empty data set when the files cannot be read.
inline const worker::FashionMnist& RealData() {
  static const worker::FashionMnist* const data = [] {
    absl::StatusOr<worker::FashionMnist> read = worker::ReadFashionMnist(SWEEP_FASHION_MNIST_DIR);
    EXPECT_TRUE(read.ok()) << read.status();
    return new worker::FashionMnist(read.ok() ? *std::move(read) : worker::FashionMnist{});
  }();
  return *data;
}

// Loads a trainer's checkpoint file into `model` and `optimizer`, which must have the
// trial's architecture. Fails the calling test when an archive is missing.
inline void LoadCheckpoint(const std::string& path, worker::LeNet& model,
                           torch::optim::Adam& optimizer) {
  torch::serialize::InputArchive archive;
  archive.load_from(path);
  torch::serialize::InputArchive model_archive;
  ASSERT_TRUE(archive.try_read("model", model_archive));
  model->load(model_archive);
  torch::serialize::InputArchive optimizer_archive;
  ASSERT_TRUE(archive.try_read("optimizer", optimizer_archive));
  optimizer.load(optimizer_archive);
}

// A test fixture with an empty directory, dir_, named after the test and removed when the
// test ends.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        std::filesystem::path(::testing::TempDir()) /
        ("trainer-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
};

}  // namespace sweep::testing

#endif  // SWEEP_TESTS_SUPPORT_TRAINER_H_
