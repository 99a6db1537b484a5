"""Train the worker's LeNet-5 with an idiomatic PyTorch loop and print images per second.

The baseline for bench/train_bench.sh: the same model, data, optimizer and batch size as
the worker's C++ trainer, written the way a PyTorch user would write it. Runs with
Debian's python3-torch (/usr/bin/python3). Prints one line of key=value pairs.
"""

import argparse
import gzip
import pathlib
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def read_idx(path: pathlib.Path, header_bytes: int) -> np.ndarray:
    with gzip.open(path, "rb") as file:
        return np.frombuffer(file.read(), dtype=np.uint8, offset=header_bytes)


def load_split(data_dir: pathlib.Path, prefix: str, count: int):
    images = read_idx(data_dir / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
    labels = read_idx(data_dir / f"{prefix}-labels-idx1-ubyte.gz", 8)
    images = torch.from_numpy(images[:count].copy()).float().div_(255.0)
    labels = torch.from_numpy(labels[:count].astype(np.int64))
    return images, labels


class LeNet(nn.Module):
    def __init__(self, conv1_depth: int, conv2_depth: int, dense_units: int, keep_prob: float):
        super().__init__()
        self.conv1 = nn.Conv2d(1, conv1_depth, 5, padding=2)
        self.conv2 = nn.Conv2d(conv1_depth, conv2_depth, 5, padding=2)
        self.dense = nn.Linear(conv2_depth * 7 * 7, dense_units)
        self.dropout = nn.Dropout(1.0 - keep_prob)
        self.output = nn.Linear(dense_units, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = self.dropout(F.relu(self.dense(torch.flatten(x, 1))))
        return self.output(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=pathlib.Path,
                        default=pathlib.Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--train-images", type=int, default=10000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--conv1-depth", type=int, default=32)
    parser.add_argument("--conv2-depth", type=int, default=64)
    parser.add_argument("--dense-units", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images, labels = load_split(args.data_dir, "train", args.train_images)
    model = LeNet(args.conv1_depth, args.conv2_depth, args.dense_units, keep_prob=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    # One step before timing, as the C++ benchmark warms up with a one-step trial.
    model.train()
    optimizer.zero_grad()
    F.cross_entropy(model(images[: args.batch_size]), labels[: args.batch_size]).backward()
    optimizer.step()

    start = time.perf_counter()
    order = torch.randperm(len(labels))
    running_loss = 0.0
    for begin in range(0, len(labels), args.batch_size):
        indices = order[begin : begin + args.batch_size]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images[indices]), labels[indices])
        loss.backward()
        optimizer.step()
        running_loss += loss.item() * len(indices)
    seconds = time.perf_counter() - start

    print(f"images_per_second={len(labels) / seconds:.1f} "
          f"train_loss={running_loss / len(labels):.4f} threads={torch.get_num_threads()}")


if __name__ == "__main__":
    main()
