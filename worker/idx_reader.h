#ifndef SWEEP_WORKER_IDX_READER_H_
#define SWEEP_WORKER_IDX_READER_H_

#include <cstdint>
#include <filesystem>
#include <vector>

#include "absl/status/statusor.h"

namespace sweep::worker {

// Side length of a Fashion-MNIST image in pixels.
inline constexpr int64_t kImageSide = 28;
inline constexpr int64_t kImagePixels = kImageSide * kImageSide;
inline constexpr int kNumClasses = 10;

// Labeled 28x28 grayscale images as stored in IDX files.
struct LabeledImages {
  // Row-major pixels, kImagePixels per image, 0 (background) to 255.
  std::vector<uint8_t> pixels;
  // One class index in [0, kNumClasses) per image.
  std::vector<uint8_t> labels;

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
};

struct FashionMnist {
  LabeledImages train;
  LabeledImages test;
};

// Reads a gzipped IDX image file (magic 0x00000803) of 28x28 images and returns the pixels.
// Error messages start with the file path. The codes are NotFound for a missing file and
// DataLoss for corrupt or truncated gzip data, which includes a CRC32 or length mismatch.
// InvalidArgument means the file is not gzip, its header is wrong, or its data is shorter
// or longer than the header declares.
absl::StatusOr<std::vector<uint8_t>> ReadIdxImages(const std::filesystem::path& path);

// Reads a gzipped IDX label file (magic 0x00000801) with labels in [0, 9]. Fails like
// ReadIdxImages, and also on a label outside that range.
absl::StatusOr<std::vector<uint8_t>> ReadIdxLabels(const std::filesystem::path& path);

// Reads an image file and its label file and checks that they have equal counts.
absl::StatusOr<LabeledImages> ReadLabeledImages(const std::filesystem::path& images_path,
                                                const std::filesystem::path& labels_path);

// Reads train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz
// and t10k-labels-idx1-ubyte.gz from `data_dir`.
absl::StatusOr<FashionMnist> ReadFashionMnist(const std::filesystem::path& data_dir);

}  // namespace sweep::worker

#endif  // SWEEP_WORKER_IDX_READER_H_
