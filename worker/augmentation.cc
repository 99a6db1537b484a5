#include "worker/augmentation.h"

namespace sweep::worker {
namespace {

// Modes of at::grid_sampler, as numbered by LibTorch.
constexpr int64_t kBilinear = 0;
constexpr int64_t kBorderPadding = 1;

torch::Tensor FlipImages(const torch::Tensor& images, const torch::Tensor& noise) {
  const torch::Tensor flip = noise.select(1, 0).lt(0.5).view({-1, 1, 1, 1});
  return torch::where(flip, images.flip({3}), images);
}

// Builds one affine map per image from output to input coordinates, both normalized to
// [-1, 1] across the image (align_corners=false), and resamples the image through it.
torch::Tensor CropAndResizeImages(const torch::Tensor& images, const torch::Tensor& noise) {
  const torch::Tensor scale_x = kMinCropFraction + (1.0 - kMinCropFraction) * noise.select(1, 1);
  const torch::Tensor scale_y = kMinCropFraction + (1.0 - kMinCropFraction) * noise.select(1, 2);
  // The window center may move by up to the part of the side the window leaves out, which
  // keeps the whole window inside the image.
  const torch::Tensor shift_x = (1.0 - scale_x) * (2.0 * noise.select(1, 3) - 1.0);
  const torch::Tensor shift_y = (1.0 - scale_y) * (2.0 * noise.select(1, 4) - 1.0);
  const torch::Tensor zeros = torch::zeros_like(scale_x);
  const torch::Tensor theta =
      torch::stack({scale_x, zeros, shift_x, zeros, scale_y, shift_y}, 1).view({-1, 2, 3});

  const torch::Tensor grid =
      torch::affine_grid_generator(theta, images.sizes(), /*align_corners=*/false);
  return torch::grid_sampler(images, grid, kBilinear, kBorderPadding, /*align_corners=*/false);
}

}  // namespace

torch::Tensor DrawAugmentationNoise(int64_t count, torch::Generator& generator) {
  return torch::rand({count, kAugmentationNoiseColumns}, generator, torch::kFloat);
}

torch::Tensor AugmentImages(const torch::Tensor& images, const torch::Tensor& noise,
                            Augmentation augmentation) {
  switch (augmentation) {
    case Augmentation::kNone:
      return images;
    case Augmentation::kFlip:
      return FlipImages(images, noise);
    case Augmentation::kCrop:
      return CropAndResizeImages(images, noise);
    case Augmentation::kFlipAndCrop:
      return FlipImages(CropAndResizeImages(images, noise), noise);
  }
  return images;
}

}  // namespace sweep::worker
