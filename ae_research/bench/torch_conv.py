"""The conv AE of models/conv.py (default settings) in PyTorch eager, for `ae-bench` (bench/conv.py runs it).

Conv 3x3 same + ReLU + MaxPool 2 (ceil mode: TF's SAME pooling) per channel count, nearest upsampling +
Conv 3x3 + ReLU per stage (decoder channels reversed(channels[:-1]) + channels[:1]), a 3x3 head to the
image's channels, centre crop, sigmoid; MSE, Adam 1e-3; batches from a fixed permutation.

  python torch_conv.py IMAGES.npy CHANNELS(16,32,64) STEPS BATCH FLUSH_DENORMAL(0|1)

prints one JSON line: samples/s over STEPS steps after 5 warm-up steps.
"""
import json
import math
import sys
import time

import numpy as np
import torch
from torch import nn


def build(in_ch: int, channels, side: int):
  conv = lambda a, b: nn.Conv2d(a, b, 3, padding=1)
  enc = []
  for a, b in zip((in_ch, *channels[:-1]), channels):
    enc += [conv(a, b), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
  dec_ch = (*reversed(channels[:-1]), channels[0])
  dec = []
  for a, b in zip((channels[-1], *dec_ch[:-1]), dec_ch):
    dec += [nn.Upsample(scale_factor=2, mode="nearest"), conv(a, b), nn.ReLU()]
  dec.append(conv(dec_ch[-1], in_ch))
  decoded = math.ceil(side / 2 ** len(channels)) * 2 ** len(channels)
  return nn.Sequential(*enc, *dec), (decoded - side) // 2


def main(argv):
  path, channels, steps, batch, flush = argv[1], tuple(int(c) for c in argv[2].split(",")), int(argv[3]), \
      int(argv[4]), bool(int(argv[5]))
  torch.set_flush_denormal(flush)
  torch.manual_seed(0)
  x = torch.from_numpy(np.load(path)).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
  model, top = build(x.shape[1], channels, x.shape[2])
  opt = torch.optim.Adam(model.parameters(), 1e-3)
  perm = torch.randperm(x.shape[0])
  n_batches = x.shape[0] // batch

  def step(i):
    xb = x[perm[(i % n_batches) * batch:(i % n_batches + 1) * batch]]
    out = torch.sigmoid(model(xb)[:, :, top:top + x.shape[2], top:top + x.shape[3]])
    loss = ((out - xb) ** 2).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss

  for i in range(5):
    step(i)
  t = time.perf_counter()
  for i in range(steps):
    loss = step(5 + i)
  loss = float(loss.detach())
  elapsed = time.perf_counter() - t
  print(json.dumps({"samples_per_s": steps * batch / elapsed, "loss": loss, "threads": torch.get_num_threads(),
                    "flush_denormal": flush, "version": torch.__version__}))


if __name__ == "__main__":
  main(sys.argv)
