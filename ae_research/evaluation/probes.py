"""How good are the codes? Probes and baselines on the device, in JAX (compiled once per shape).

- PCA at the code's dimension (`metrics/pca.py`): SPEC 1's linear baseline;
- linear probe: multinomial logistic regression with scikit-learn's objective (standardised
  features, L2 penalty with C = 1, unpenalised intercept), solved by L-BFGS (optax) in one
  compiled loop; it agrees with `sklearn.linear_model.LogisticRegression` (tested);
- k-NN accuracy and k-NN regression: squared distances by matmul and `lax.top_k`, in batches
  of queries so memory stays at (batch x train);
- retrieval: precision@k of cosine nearest neighbours, labels as relevance (SPEC 3c).
"""
import functools
from typing import Dict, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from ae_research.metrics.arrays import float_rows as _rows
from ae_research.metrics.pca import pca_fit, pca_mse

QUERY_BATCH = 512


def subset(n: int, limit: int, seed: int) -> np.ndarray:
  """A fixed random subset of `limit` of `n` row indices (all of them, shuffled, when n <= limit)."""
  return np.random.default_rng(seed).permutation(n)[:limit]


def pca_reconstruction_mse(train, test, dim: int, max_train: int = 20_000, seed: int = 0) -> float:
  """Test MSE of the best rank-`dim` linear reconstruction (PCA fitted on up to `max_train` training rows)."""
  train = np.asarray(train)[subset(len(train), max_train, seed)]
  return float(pca_mse(*pca_fit(train, dim), test))


# --- Linear probe ---
def _standardize(train: jax.Array, test: jax.Array) -> Tuple[jax.Array, jax.Array]:
  mean, std = train.mean(axis=0), train.std(axis=0)
  std = jnp.where(std > 0, std, 1.0)
  return (train - mean) / std, (test - mean) / std


@jax.custom_vjp
def _mean_cross_entropy(x, x_t, labels, w, b):
  """Mean softmax cross-entropy of the linear map (w, b) on the rows of x; x_t is x transposed."""
  return _mean_cross_entropy_fwd(x, x_t, labels, w, b)[0]


def _mean_cross_entropy_fwd(x, x_t, labels, w, b):
  logits = x @ w + b
  return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), (x_t, labels, logits)


def _mean_cross_entropy_bwd(residuals, g):
  # The weights' gradient reads the transposed copy row by row (x_t @ d): autodiff contracts x over
  # its rows instead, which XLA:CPU runs at half the speed on wide codes (one value and gradient at
  # 10,000 x 3,136: 27.6 -> 17.2 ms; the probe is memory-bound, so this is most of its time).
  x_t, labels, logits = residuals
  d = (jax.nn.softmax(logits) - jax.nn.one_hot(labels, logits.shape[1])) * (g / logits.shape[0])
  return None, None, None, x_t @ d, d.sum(axis=0)


_mean_cross_entropy.defvjp(_mean_cross_entropy_fwd, _mean_cross_entropy_bwd)


@functools.partial(jax.jit, static_argnames=("num_classes", "max_iter"))
def _linear_probe(train_x, train_y, test_x, test_y, num_classes: int, max_iter: int, c: float, tol: float):
  x, t = _standardize(_rows(train_x), _rows(test_x))
  x_t = lax.optimization_barrier(x.T)  # Materialised once: without the barrier XLA folds it back into the dot.
  n = x.shape[0]

  def objective(p):  # scikit-learn's C * sum(CE) + ||W||^2 / 2, divided by C * n (same minimiser).
    return _mean_cross_entropy(x, x_t, train_y, p["w"], p["b"]) + 0.5 * jnp.sum(jnp.square(p["w"])) / (c * n)

  opt = optax.lbfgs()
  value_and_grad = optax.value_and_grad_from_state(objective)

  def step(carry):
    params, state = carry
    value, grad = value_and_grad(params, state=state)
    updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=objective)
    return optax.apply_updates(params, updates), state

  def going(carry):
    _, state = carry
    count, grad = optax.tree.get(state, "count"), optax.tree.get(state, "grad")
    return (count == 0) | ((count < max_iter) & (optax.tree.norm(grad, ord=jnp.inf) > tol))

  params = {"w": jnp.zeros((x.shape[1], num_classes)), "b": jnp.zeros(num_classes)}
  params, _ = lax.while_loop(going, step, (params, opt.init(params)))
  return jnp.mean(jnp.argmax(t @ params["w"] + params["b"], axis=1) == test_y)


def linear_probe_accuracy(train_x, train_y, test_x, test_y, max_iter: int = 500, c: float = 1.0,
                          tol: float = 1e-4) -> float:
  num_classes = int(max(np.max(train_y), np.max(test_y))) + 1
  return float(_linear_probe(train_x, jnp.asarray(train_y), test_x, jnp.asarray(test_y), num_classes, max_iter,
                             c, tol))


# --- Nearest neighbours ---
def _in_batches(fn, queries: jax.Array) -> jax.Array:
  """fn over `queries` in batches of QUERY_BATCH rows (padded), results concatenated."""
  n = queries.shape[0]
  padded = jnp.pad(queries, ((0, -n % QUERY_BATCH),) + ((0, 0),) * (queries.ndim - 1))
  out = lax.map(fn, padded.reshape(-1, QUERY_BATCH, *queries.shape[1:]))
  return jax.tree.map(lambda v: v.reshape(-1, *v.shape[2:])[:n], out)


def _nearest(train: jax.Array, queries: jax.Array, k: int) -> jax.Array:
  """Indices of the k nearest rows of `train` (squared Euclidean distance) to each query."""
  norms = jnp.sum(jnp.square(train), axis=1)
  return _in_batches(lambda q: lax.top_k(2.0 * q @ train.T - norms, k)[1], queries)


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _knn_accuracy(train_x, train_y, test_x, test_y, k: int, num_classes: int):
  neighbours = _nearest(_rows(train_x), _rows(test_x), k)
  votes = jax.nn.one_hot(train_y[neighbours], num_classes).sum(axis=1)
  return jnp.mean(jnp.argmax(votes, axis=1) == test_y)  # Ties: the smallest label, as scikit-learn.


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 5) -> float:
  num_classes = int(max(np.max(train_y), np.max(test_y))) + 1
  return float(_knn_accuracy(train_x, jnp.asarray(train_y), test_x, jnp.asarray(test_y), k, num_classes))


@functools.partial(jax.jit, static_argnames="k")
def _knn_r2(fit_x, fit_y, score_x, score_y, k: int):
  predicted = fit_y[_nearest(_rows(fit_x), _rows(score_x), k)].mean(axis=1)
  return 1.0 - jnp.sum(jnp.square(score_y - predicted)) / jnp.sum(jnp.square(score_y - score_y.mean()))


def knn_regression_r2(codes, values, k: int = 10, seed: int = 0) -> float:
  """R^2 of k-NN regression of `values` from codes (fit on one half, scored on the other):
  near 1 when the codes order the examples by that value, however non-linearly."""
  rows = np.random.default_rng(seed).permutation(len(codes))
  fit, score = rows[: len(rows) // 2], rows[len(rows) // 2:]
  values = jnp.asarray(values, jnp.float32)
  return float(_knn_r2(jnp.asarray(codes)[fit], values[fit], jnp.asarray(codes)[score], values[score], k))


@functools.partial(jax.jit, static_argnames="k")
def _cosine_neighbours(codes, queries, k: int):
  codes = _rows(codes)
  unit = codes / jnp.maximum(jnp.linalg.norm(codes, axis=1, keepdims=True), 1e-12)

  def one(q):  # q: query row indices.
    sims = unit[q] @ unit.T
    sims = sims.at[jnp.arange(q.shape[0]), q].set(-jnp.inf)  # A query is not its own neighbour.
    top, idx = lax.top_k(sims, k)
    return idx, 1.0 - top

  return _in_batches(one, queries)


def cosine_neighbours(codes, queries, k: int) -> Tuple[np.ndarray, np.ndarray]:
  """Indices and cosine distances of the k nearest codes to each query index (itself excluded)."""
  idx, dist = _cosine_neighbours(codes, jnp.asarray(queries, jnp.int32), k)
  return np.asarray(idx), np.asarray(dist)


def retrieval_precision(codes, labels, ks: Sequence[int] = (1, 4, 10), num_queries: int = 1000,
                        seed: int = 0) -> Dict[int, float]:
  queries = subset(len(codes), num_queries, seed)
  neighbours, _ = cosine_neighbours(codes, queries, max(ks))
  labels = np.asarray(labels)
  hits = labels[neighbours] == labels[queries][:, None]
  return {k: float(hits[:, :k].mean()) for k in ks}
