"""The SPEC 1 MLP AE of bench/reference.py in PyTorch eager, for `ae-bench`'s MLP rows.

784-128-64-10-2, ReLU, linear code, mirrored decoder, tanh output; MSE, Adam 1e-3; each epoch's
batches from a new permutation of the whole training split (held as one float32 tensor).

  python torch_mlp.py IMAGES.npy EPOCHS BATCH FLUSH_DENORMAL(0|1)

prints one JSON line: samples/s of the median epoch after the first (as reference.time_reference).
"""
import json
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

SIZES = (784, 128, 64, 10, 2)


def build(sizes=SIZES) -> nn.Sequential:
  layers = []
  dims = list(zip(sizes[:-1], sizes[1:])) + list(zip(sizes[::-1][:-1], sizes[::-1][1:]))
  for i, (a, b) in enumerate(dims):
    layers.append(nn.Linear(a, b))
    if i == len(dims) - 1:
      layers.append(nn.Tanh())
    elif i != len(dims) // 2 - 1:  # Linear code layer.
      layers.append(nn.ReLU())
  return nn.Sequential(*layers)


def main(argv):
  path, epochs, batch, flush = argv[1], int(argv[2]), int(argv[3]), bool(int(argv[4]))
  torch.set_flush_denormal(flush)
  torch.manual_seed(0)
  images = np.load(path)
  x = torch.from_numpy(images.reshape(len(images), -1))
  model = build((x.shape[1], *SIZES[1:]))
  opt = torch.optim.Adam(model.parameters(), 1e-3)
  steps = x.shape[0] // batch
  times, loss = [], None
  for _ in range(epochs):
    t = time.perf_counter()
    order = torch.randperm(x.shape[0])[:steps * batch].view(steps, batch)
    for idx in order:
      xb = x[idx]
      loss = ((model(xb) - xb) ** 2).mean()
      opt.zero_grad(set_to_none=True)
      loss.backward()
      opt.step()
    loss = float(loss.detach())
    times.append(time.perf_counter() - t)
  steady = statistics.median(times[1:] or times)
  print(json.dumps({"samples_per_s": steps * batch / steady, "epoch_s": steady, "loss": loss,
                    "threads": torch.get_num_threads(), "flush_denormal": flush, "version": torch.__version__,
                    "params": sum(p.numel() for p in model.parameters())}))


if __name__ == "__main__":
  main(sys.argv)
