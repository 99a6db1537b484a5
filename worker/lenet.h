#ifndef SWEEP_WORKER_LENET_H_
#define SWEEP_WORKER_LENET_H_

// The LibTorch model behind the worker's trainer, exposed for tests and benchmarks. Includes
// LibTorch, so only the trainer's sources and tests include this header. The definitions
// are in worker/torch_trainer.cc.

#include <torch/torch.h>

#include <cstdint>

#include "common/hyperparameters.h"
#include "worker/idx_reader.h"

namespace sweep::worker {

// Modified LeNet-5 for 1x28x28 images, returning 10 logits. The layers are:
//   conv 5x5 with conv1_depth filters and padding 2, ReLU, 2x2 max pool,
//   conv 5x5 with conv2_depth filters and padding 2, ReLU, 2x2 max pool,
//   dense with dense_layer_units units, ReLU,
//   dropout that keeps each unit with probability keep_prob, dense with 10 units.
// Weights start from LibTorch's default initialization, drawn from the global generator.
class LeNetImpl : public torch::nn::Module {
 public:
  explicit LeNetImpl(const Hyperparameters& hyperparameters);

  torch::Tensor forward(const torch::Tensor& images);

 private:
  torch::nn::Conv2d conv1_{nullptr};
  torch::nn::Conv2d conv2_{nullptr};
  torch::nn::Linear dense_{nullptr};
  torch::nn::Linear output_{nullptr};
  double drop_probability_;
};
TORCH_MODULE(LeNet);

// Computes relu(max_pool2d(x, 2)), which equals max_pool2d(relu(x), 2), with the same
// values and gradients. For contiguous float input on the CPU with even height and width,
// one pass computes it and stores a one-byte argmax per output instead of LibTorch's 8-byte
// indices. Other input goes through those LibTorch operators. A NaN input propagates to the
// output.
torch::Tensor ReluMaxPool2x2(const torch::Tensor& input);

// Adam that updates each parameter in one pass instead of torch::optim::Adam's separate
// tensor operations. It applies when every parameter with a gradient is a contiguous float CPU
// tensor and weight decay and AMSGrad are off. Otherwise step() calls torch::optim::Adam's.
// The state layout is torch::optim::Adam's, so checkpoints load into either class.
class FusedAdam : public torch::optim::Adam {
 public:
  using torch::optim::Adam::Adam;

  torch::Tensor step(LossClosure closure = nullptr) override;
};

// Images and labels on one device.
struct TensorDataset {
  // Float [N, 1, 28, 28], pixels scaled from 0..255 to [0, 1].
  torch::Tensor images;
  // Int64 [N] class indices.
  torch::Tensor labels;

  int64_t size() const { return labels.size(0); }
};

// Converts images [begin, end) of `data` to tensors on `device`.
TensorDataset ToTensorDataset(const LabeledImages& data, int64_t begin, int64_t end,
                              const torch::Device& device);

struct Evaluation {
  // Mean cross-entropy loss.
  double loss = 0;
  // Fraction of images whose highest logit is the label.
  double accuracy = 0;
};

// Evaluates `model` on `data` in eval mode without gradients, `batch_size` images at a
// time, reading the sums back to the host once. Restores the model's training mode.
Evaluation Evaluate(LeNet& model, const TensorDataset& data, int64_t batch_size);

}  // namespace sweep::worker

#endif  // SWEEP_WORKER_LENET_H_
