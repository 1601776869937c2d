"""An independent UFLDL sparse autoencoder (sparseAutoencoderCost.m + minFunc L-BFGS), in NumPy/SciPy.

The check behind SPEC 4's root cause: the same patches the framework trains on, the exact UFLDL
cost and gradient written out by hand, SciPy's L-BFGS for 400 iterations (100 corrections),
UFLDL's initialisation. It shares no code with the framework's model, loss or optimiser, so when
its filter-structure number agrees with `ae-reproduce sparse_kl_ufldl`'s, the framework's
training is not what decides whether edges appear; the settings and the data are.

  python experiments/sparse_kl_ufldl/ufldl_reference.py                  # UFLDL: rho 0.01, lambda 1e-4
  python experiments/sparse_kl_ufldl/ufldl_reference.py --rho 0.1 --lam 1e-5   # the seed's values
  python experiments/sparse_kl_ufldl/ufldl_reference.py --downscale 1    # the old data preparation
"""
import argparse

import numpy as np
import scipy.optimize

from ae_research.data.photos import load_photo_patches
from ae_research.evaluation.filters import neighbour_correlation

sigmoid = lambda z: 1 / (1 + np.exp(-z))


def cost_and_grad(theta, x, hidden, rho, lam, beta):
  """UFLDL's sparseAutoencoderCost: x is (visible, m), one patch per column."""
  visible, m = x.shape
  w1 = theta[:hidden * visible].reshape(hidden, visible)
  w2 = theta[hidden * visible:2 * hidden * visible].reshape(visible, hidden)
  b1 = theta[2 * hidden * visible:2 * hidden * visible + hidden]
  b2 = theta[2 * hidden * visible + hidden:]
  a2 = sigmoid(w1 @ x + b1[:, None])
  a3 = sigmoid(w2 @ a2 + b2[:, None])
  rho_hat = a2.mean(axis=1)
  kl = np.sum(rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat)))
  cost = 0.5 * np.sum((a3 - x) ** 2) / m + lam / 2 * (np.sum(w1 ** 2) + np.sum(w2 ** 2)) + beta * kl
  d3 = -(x - a3) * a3 * (1 - a3)
  sparsity_delta = beta * (-rho / rho_hat + (1 - rho) / (1 - rho_hat))
  d2 = (w2.T @ d3 + sparsity_delta[:, None]) * a2 * (1 - a2)
  grad = np.concatenate([(d2 @ x.T / m + lam * w1).ravel(), (d3 @ a2.T / m + lam * w2).ravel(),
                         d2.mean(axis=1), d3.mean(axis=1)])
  return cost, grad


def initialize(hidden, visible, rng):
  """UFLDL's initializeParameters: W ~ U(-r, r), r = sqrt(6 / (hidden + visible + 1)); zero biases."""
  r = np.sqrt(6 / (hidden + visible + 1))
  w = rng.uniform(-r, r, size=2 * hidden * visible)
  return np.concatenate([w, np.zeros(hidden + visible)])


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rho", type=float, default=0.01)
  parser.add_argument("--lam", type=float, default=1e-4)
  parser.add_argument("--beta", type=float, default=3.0)
  parser.add_argument("--iterations", type=int, default=400)
  parser.add_argument("--downscale", type=int, default=2)
  parser.add_argument("--whiten", default="olshausen")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  data = load_photo_patches("photo_patches", batch_size=10_000, downscale=args.downscale, whiten=args.whiten)
  x = data.train["image"].reshape(len(data.train["image"]), -1).T.astype(np.float64)
  hidden, visible = 100, x.shape[0]
  result = scipy.optimize.minimize(cost_and_grad, initialize(hidden, visible, np.random.default_rng(args.seed)),
                                   args=(x, hidden, args.rho, args.lam, args.beta), jac=True, method="L-BFGS-B",
                                   options={"maxiter": args.iterations, "maxcor": 100})
  w1 = result.x[:hidden * visible].reshape(hidden, visible)
  codes = sigmoid(w1 @ x + result.x[2 * hidden * visible:2 * hidden * visible + hidden][:, None])
  structure = neighbour_correlation(w1.reshape(hidden, 8, 8)).mean()
  print(f"rho={args.rho} lambda={args.lam} downscale={args.downscale} whiten={args.whiten}: "
        f"cost {result.fun:.4f} after {result.nit} iterations; filter structure (neighbour correlation) "
        f"{structure:.2f}; mean activation {codes.mean():.4f}; code values below 0.01 {np.mean(codes < 0.01):.1%}")


if __name__ == "__main__":
  main()
