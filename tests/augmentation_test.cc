#include "worker/augmentation.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include "common/hyperparameters.h"

namespace sweep::worker {
namespace {

// A batch of 8 random 1x28x28 images with pixels in [0, 1).
torch::Tensor RandomImages(uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::rand({8, 1, 28, 28}, generator, torch::kFloat);
}

// Noise rows that leave crops at full size and set the flip column to `flip`.
torch::Tensor FullWindowNoise(float flip) {
  torch::Tensor noise = torch::full({8, kAugmentationNoiseColumns}, 0.5f);
  noise.select(1, 0).fill_(flip);
  noise.select(1, 1).fill_(1.0f);
  noise.select(1, 2).fill_(1.0f);
  return noise;
}

TEST(AugmentationTest, NoiseShapeAndRange) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(3);

  const torch::Tensor noise = DrawAugmentationNoise(100, generator);

  EXPECT_EQ(noise.sizes(), (std::vector<int64_t>{100, kAugmentationNoiseColumns}));
  EXPECT_TRUE(noise.device().is_cpu());
  EXPECT_GE(noise.min().item<float>(), 0.0f);
  EXPECT_LT(noise.max().item<float>(), 1.0f);
}

TEST(AugmentationTest, EveryModeKeepsShape) {
  const torch::Tensor images = RandomImages(1);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(2);
  const torch::Tensor noise = DrawAugmentationNoise(8, generator);

  for (Augmentation mode : {Augmentation::kNone, Augmentation::kFlip, Augmentation::kCrop,
                            Augmentation::kFlipAndCrop}) {
    SCOPED_TRACE(static_cast<int>(mode));
    const torch::Tensor augmented = AugmentImages(images, noise, mode);
    EXPECT_EQ(augmented.sizes(), images.sizes());
    EXPECT_EQ(augmented.scalar_type(), torch::kFloat);
  }
}

TEST(AugmentationTest, NoneLeavesBatchUnchanged) {
  const torch::Tensor images = RandomImages(1);
  const torch::Tensor before = images.clone();
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(2);

  const torch::Tensor augmented =
      AugmentImages(images, DrawAugmentationNoise(8, generator), Augmentation::kNone);

  EXPECT_TRUE(torch::equal(augmented, before));
  EXPECT_EQ(augmented.data_ptr(), images.data_ptr());
}

TEST(AugmentationTest, FlipBelowHalfMirrorsExactly) {
  const torch::Tensor images = RandomImages(1);

  const torch::Tensor augmented =
      AugmentImages(images, FullWindowNoise(0.25f), Augmentation::kFlip);

  EXPECT_TRUE(torch::equal(augmented, images.flip({3})));
}

TEST(AugmentationTest, FlipAtOrAboveHalfKeepsImage) {
  const torch::Tensor images = RandomImages(1);

  const torch::Tensor augmented = AugmentImages(images, FullWindowNoise(0.5f), Augmentation::kFlip);

  EXPECT_TRUE(torch::equal(augmented, images));
}

TEST(AugmentationTest, FlipChoosesPerImage) {
  const torch::Tensor images = RandomImages(1);
  torch::Tensor noise = FullWindowNoise(0.9f);
  noise[2][0] = 0.1f;
  noise[5][0] = 0.4f;

  const torch::Tensor augmented = AugmentImages(images, noise, Augmentation::kFlip);

  for (int64_t i = 0; i < 8; ++i) {
    SCOPED_TRACE(i);
    const bool flipped = i == 2 || i == 5;
    const torch::Tensor expected = flipped ? images[i].flip({2}) : images[i];
    EXPECT_TRUE(torch::equal(augmented[i], expected));
  }
}

TEST(AugmentationTest, FullWindowCropKeepsImage) {
  const torch::Tensor images = RandomImages(1);

  const torch::Tensor augmented = AugmentImages(images, FullWindowNoise(0.9f), Augmentation::kCrop);

  EXPECT_TRUE(torch::allclose(augmented, images, /*rtol=*/0, /*atol=*/1e-5));
}

TEST(AugmentationTest, CropChangesImages) {
  const torch::Tensor images = RandomImages(1);
  torch::Tensor noise = FullWindowNoise(0.9f);
  noise.select(1, 1).fill_(0.0f);
  noise.select(1, 2).fill_(0.0f);

  const torch::Tensor augmented = AugmentImages(images, noise, Augmentation::kCrop);

  EXPECT_GT((augmented - images).abs().max().item<float>(), 0.01f);
}

TEST(AugmentationTest, CropOfSmallestWindowZoomsIn) {
  // Each pixel's value is its column index divided by 27. A centered crop to 80% of the
  // width samples columns 2.7 and 24.3 at the output's first and last pixel centers.
  const torch::Tensor ramp = torch::arange(28, torch::kFloat).div(27.0).expand({8, 1, 28, 28});
  torch::Tensor noise = FullWindowNoise(0.9f);
  noise.select(1, 1).fill_(0.0f);

  const torch::Tensor augmented = AugmentImages(ramp.contiguous(), noise, Augmentation::kCrop);

  const torch::Tensor left = augmented.select(3, 0);
  const torch::Tensor right = augmented.select(3, 27);
  EXPECT_GT(left.min().item<float>(), 2.0f / 27.0f);
  EXPECT_LT(right.max().item<float>(), 25.0f / 27.0f);
}

TEST(AugmentationTest, CropOutputStaysInInputRange) {
  const torch::Tensor images = RandomImages(1);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(5);

  for (Augmentation mode : {Augmentation::kCrop, Augmentation::kFlipAndCrop}) {
    SCOPED_TRACE(static_cast<int>(mode));
    const torch::Tensor augmented =
        AugmentImages(images, DrawAugmentationNoise(8, generator), mode);
    EXPECT_GE(augmented.min().item<float>(), 0.0f);
    EXPECT_LE(augmented.max().item<float>(), 1.0f);
  }
}

TEST(AugmentationTest, SameSeedGivesSameBatch) {
  const torch::Tensor images = RandomImages(1);
  at::Generator first_generator = at::make_generator<at::CPUGeneratorImpl>(11);
  at::Generator second_generator = at::make_generator<at::CPUGeneratorImpl>(11);
  at::Generator other_generator = at::make_generator<at::CPUGeneratorImpl>(12);

  const torch::Tensor first =
      AugmentImages(images, DrawAugmentationNoise(8, first_generator), Augmentation::kFlipAndCrop);
  const torch::Tensor second =
      AugmentImages(images, DrawAugmentationNoise(8, second_generator), Augmentation::kFlipAndCrop);
  const torch::Tensor other =
      AugmentImages(images, DrawAugmentationNoise(8, other_generator), Augmentation::kFlipAndCrop);

  EXPECT_TRUE(torch::equal(first, second));
  EXPECT_FALSE(torch::equal(first, other));
}

}  // namespace
}  // namespace sweep::worker
