"""The generative models of `ae-bench`'s generative rows in PyTorch eager (bench/generative.py runs it): the
VAE, VQ-VAE and FactorVAE composed on disentanglement_lib's conv net (models/generative), from a spec that
bench/generative.py writes from the framework's own config, so both sides read the same sizes.

Encoder: Conv (stride 2, TF "SAME" padding, ReLU) per channel count, Dense + ReLU; latent: Gaussian (two Dense
heads, one reparameterised draw) or vector-quantised (Dense to tokens x dim, nearest EMA codebook entry,
dead entries restarted, straight-through); decoder: Dense + ReLU, Dense to a map + ReLU, ConvTranspose
(stride 2, lax's "SAME") with ReLU between, centre crop. Loss per example, averaged over the batch:
Bernoulli NLL summed over pixels + the weighted KL to N(0, I), commitment, or FactorVAE's gamma TC and
discriminator cross-entropy (the discriminator an MLP of leaky ReLUs with its own Adam; the TC term reads
it with detached weights, its loss reads detached codes: one backward pass, as the framework's one loss).
Initialised as flax does (LeCun-normal kernels, zero biases); batches from a fixed permutation.

  python torch_generative.py IMAGES.npy SPEC.json STEPS FLUSH_DENORMAL(0|1)

prints one JSON line: samples/s over STEPS steps after 5 warm-up steps, and the parameter count.
"""
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WARMUP = 5


def lecun_(weight: torch.Tensor, fan_in: int) -> None:
  """flax's default kernel init: truncated normal (at 2 sigma) of variance 1 / fan_in."""
  std = (1.0 / fan_in) ** 0.5 / .87962566103423978  # The std of a unit normal truncated at +-2.
  nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)


def init(layer: nn.Module, fan_in: int) -> nn.Module:
  lecun_(layer.weight, fan_in)
  nn.init.zeros_(layer.bias)
  return layer


def linear(a: int, b: int) -> nn.Linear:
  return init(nn.Linear(a, b), a)


def same_conv(c_in: int, c_out: int, k: int, side: int):
  """A stride-2 conv with TF's "SAME" padding (flax's): output ceil(side / 2), any odd pixel padded at the end."""
  out = -(-side // 2)
  total = max((out - 1) * 2 + k - side, 0)
  lo, hi = total // 2, total - total // 2
  conv = init(nn.Conv2d(c_in, c_out, k, 2, padding=lo if lo == hi else 0), k * k * c_in)
  return (conv if lo == hi else nn.Sequential(nn.ZeroPad2d((lo, hi, lo, hi)), conv)), out


def same_conv_transpose(c_in: int, c_out: int, k: int) -> nn.ConvTranspose2d:
  """lax.conv_transpose's "SAME" at stride 2 (flax's ConvTranspose): the dilated input padded (a, b)."""
  pad = k  # k + stride - 2, split (a, pad - a) as lax splits it; PyTorch pads (k - 1 - p, k - 1 - p + output_padding).
  a = k - 1 if k < 3 else math.ceil(pad / 2)
  if not 0 <= pad - 2 * a < 2:
    sys.exit(f"kernel {k}: lax's SAME transposed padding has no ConvTranspose2d equivalent here")
  return init(nn.ConvTranspose2d(c_in, c_out, k, 2, padding=k - 1 - a, output_padding=pad - 2 * a), k * k * c_in)


class Net(nn.Module):

  def __init__(self, shape, spec):
    super().__init__()
    side, c = shape[0], shape[2]
    enc, dec, lat = spec["encoder"], spec["decoder"], spec["latent"]
    layers = []
    for ch, k in zip(enc["channels"], enc["kernel_sizes"]):
      conv, side = same_conv(c, ch, k, side)
      layers += [conv, nn.ReLU()]
      c = ch
    self.convs, self.dense = nn.Sequential(*layers), linear(side * side * c, enc["dense"])
    self.kind = lat["kind"]
    if self.kind == "gaussian":
      self.mean, self.log_var = linear(enc["dense"], lat["dim"]), linear(enc["dense"], lat["dim"])
      code = lat["dim"]
    else:
      self.tokens, self.dim, self.decay, self.restart_below = lat["tokens"], lat["dim"], lat["decay"], lat["restart_below"]
      self.project = linear(enc["dense"], lat["tokens"] * lat["dim"])
      book = (torch.rand(lat["num_codes"], lat["dim"]) * 2 - 1) / lat["num_codes"] ** 0.5
      self.register_buffer("codebook", book)  # EMA state, not parameters: the framework's CodebookState.
      self.register_buffer("count", torch.ones(lat["num_codes"]))
      self.register_buffer("total", book.clone())
      code = lat["tokens"] * lat["dim"]
    self.side, self.start = shape[0], math.ceil(shape[0] / 2 ** (len(dec["channels"]) + 1))
    self.map_ch = dec["channels"][0]
    self.dec_dense, self.to_map = linear(code, dec["dense"]), linear(dec["dense"], self.start ** 2 * self.map_ch)
    outs = (*dec["channels"], shape[2])
    self.deconvs = nn.ModuleList([same_conv_transpose(a, b, dec["kernel_size"])
                                  for a, b in zip((self.map_ch, *dec["channels"]), outs)])

  def decode(self, z):
    h = F.relu(self.to_map(F.relu(self.dec_dense(z)))).view(z.shape[0], self.map_ch, self.start, self.start)
    for i, deconv in enumerate(self.deconvs):
      h = deconv(h)
      h = h if i == len(self.deconvs) - 1 else F.relu(h)
    top = (h.shape[2] - self.side) // 2
    return h[:, :, top:top + self.side, top:top + self.side]

  def quantise(self, z_e):
    """Nearest codebook entries (straight-through), the EMA update (Laplace-smoothed sizes, epsilon 1e-5)
    and the restart of dead entries at random vectors of the batch; the commitment error per example."""
    flat = z_e.reshape(-1, self.dim)
    book = self.codebook
    dist = (flat ** 2).sum(1, keepdim=True) - 2 * flat @ book.T + (book ** 2).sum(1)[None]
    indices = dist.argmin(1)
    z_q = book[indices]
    with torch.no_grad():
      onehot = F.one_hot(indices, book.shape[0]).to(flat.dtype)
      count = self.decay * self.count + (1 - self.decay) * onehot.sum(0)
      total = self.decay * self.total + (1 - self.decay) * onehot.T @ flat
      n = count.sum()
      updated = total / ((count + 1e-5) / (n + count.shape[0] * 1e-5) * n)[:, None]
      dead = count < self.restart_below
      picked = flat[torch.randint(0, flat.shape[0], (book.shape[0],))]
      self.codebook.copy_(torch.where(dead[:, None], picked, updated))
      self.count.copy_(torch.where(dead, torch.ones_like(count), count))
      self.total.copy_(torch.where(dead[:, None], picked, total))
    commitment = ((z_e - z_q.view_as(z_e).detach()) ** 2).flatten(1).mean(1)
    return (z_e + (z_q.view_as(z_e) - z_e).detach()).flatten(1), commitment

  def forward(self, x):
    """(logits, terms): the codes' terms per example, besides the NLL."""
    h = F.relu(self.dense(self.convs(x).flatten(1)))
    if self.kind == "gaussian":
      mean, log_var = self.mean(h), self.log_var(h)
      z = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
      terms = {"kl": -0.5 * (1 + log_var - mean ** 2 - log_var.exp()).sum(1)}
    else:
      z, commitment = self.quantise(self.project(h).view(-1, self.tokens, self.dim))
      terms = {"commitment": commitment}
    return self.decode(z), z, terms


class Discriminator(nn.Module):
  """FactorVAE's MLP: leaky ReLUs, two logits (real codes vs dimension-wise permuted codes)."""

  def __init__(self, latent_dim, hidden, negative_slope):
    super().__init__()
    sizes = (latent_dim, *hidden, 2)
    self.layers, self.slope = nn.ModuleList([linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]), negative_slope

  def logits(self, z, frozen=False):
    h = z
    for i, layer in enumerate(self.layers):
      h = F.linear(h, layer.weight.detach(), layer.bias.detach()) if frozen else layer(h)
      h = h if i == len(self.layers) - 1 else F.leaky_relu(h, self.slope)
    return h

  def forward(self, z):
    frozen = self.logits(z, frozen=True)
    held = z.detach()
    permuted = held.gather(0, torch.argsort(torch.rand_like(held), dim=0))  # Each column its own permutation.
    zeros = torch.zeros(z.shape[0], dtype=torch.long)
    ce = lambda logits, y: F.cross_entropy(logits, y, reduction="none")
    return {"tc": frozen[:, 0] - frozen[:, 1],
            "discriminator": 0.5 * (ce(self.logits(held), zeros) + ce(self.logits(permuted), zeros + 1))}


def adam(params, o):
  return torch.optim.Adam(params, o["learning_rate"], betas=(o["b1"], o["b2"]), eps=o["eps"])


def main(argv):
  path, spec_path, steps, flush = argv[1], argv[2], int(argv[3]), bool(int(argv[4]))
  with open(spec_path) as f:
    spec = json.load(f)
  torch.set_flush_denormal(flush)
  torch.manual_seed(0)
  x = torch.from_numpy(np.load(path)).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
  if x.shape[2] != x.shape[3]:
    sys.exit(f"square images only, got {tuple(x.shape[2:])}")
  net = Net((x.shape[2], x.shape[3], x.shape[1]), spec)
  opts = [adam(net.parameters(), spec["optimizer"])]
  disc = None
  if spec.get("adversary"):
    disc = Discriminator(spec["latent"]["dim"], spec["adversary"]["hidden"], spec["adversary"]["negative_slope"])
    opts.append(adam(disc.parameters(), spec["adversary_optimizer"]))
  weights, batch = spec["weights"], spec["batch_size"]
  perm = torch.randperm(x.shape[0])
  n_batches = x.shape[0] // batch

  def step(i):
    xb = x[perm[(i % n_batches) * batch:(i % n_batches + 1) * batch]]
    logits, z, terms = net(xb)
    terms["nll"] = F.binary_cross_entropy_with_logits(logits, xb, reduction="none").flatten(1).sum(1)
    if disc is not None:
      terms.update(disc(z))
    loss = sum(weights[k] * v for k, v in terms.items()).mean()
    for opt in opts:
      opt.zero_grad(set_to_none=True)
    loss.backward()
    for opt in opts:
      opt.step()
    return loss

  for i in range(WARMUP):
    step(i)
  t = time.perf_counter()
  for i in range(steps):
    loss = step(WARMUP + i)
  loss = float(loss.detach())
  elapsed = time.perf_counter() - t
  params = sum(p.numel() for m in (net, disc) if m is not None for p in m.parameters())
  print(json.dumps({"samples_per_s": steps * batch / elapsed, "loss": loss, "params": params,
                    "threads": torch.get_num_threads(), "flush_denormal": flush, "version": torch.__version__}))


if __name__ == "__main__":
  main(sys.argv)
