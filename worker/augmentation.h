#ifndef SWEEP_WORKER_AUGMENTATION_H_
#define SWEEP_WORKER_AUGMENTATION_H_

// Random training-image augmentation as batched tensor operations. Includes LibTorch, so
// only the trainer's sources and tests include this header.

#include <torch/types.h>

#include <cstdint>

#include "common/hyperparameters.h"

namespace sweep::worker {

// Columns of the per-image uniform noise that drives augmentation.
inline constexpr int64_t kAugmentationNoiseColumns = 5;

// The smallest fraction of each image side that a random crop keeps.
inline constexpr double kMinCropFraction = 0.8;

// Draws the uniform [0, 1) noise for augmenting `count` images from `generator`, which must
// be a CPU generator. Returns a float tensor of shape [count, kAugmentationNoiseColumns] on
// the CPU.
torch::Tensor DrawAugmentationNoise(int64_t count, torch::Generator& generator);

// Augments a batch of images of shape [N, 1, H, W] (float, any device) according to
// `augmentation`, with `noise` rows as drawn by DrawAugmentationNoise (shape [N, 5], on
// the same device). Returns `images` itself for Augmentation::kNone.
//
// - Flip: an image is mirrored left to right when its noise column 0 is below 0.5.
// - Crop: each image is cropped to a window that lies inside the image and is resized back
//   to H x W with bilinear interpolation. The window's width and height are independently
//   80% to 100% of the image's (noise columns 1 and 2), and columns 3 and 4 place it.
//   Edge pixels are repeated, not zero-padded, so outputs stay within the input's range.
//
// The result is a pure function of `images` and `noise`, so the same noise reproduces the
// same batch.
torch::Tensor AugmentImages(const torch::Tensor& images, const torch::Tensor& noise,
                            Augmentation augmentation);

}  // namespace sweep::worker

#endif  // SWEEP_WORKER_AUGMENTATION_H_
