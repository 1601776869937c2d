"""The feature network sample-quality metrics compare images in: a classifier the framework trains on the
data set's own labels, its penultimate layer the features.

There is no Inception download here, so FID/KID/precision/recall are computed on these features: they
rank models on one data set consistently but are NOT Inception FIDs and do not compare with papers'
numbers. The network (an MLP, `WIDTHS`) is trained once per data set with Adam in one compiled loop and
cached under `$AE_CACHE_DIR/feature_nets/`, keyed by a fingerprint of the training images and labels and
of its settings; a `.npz` of the same network's parameters (`weights`) may be given instead.
"""
import functools
import logging
import os
from typing import Dict, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ae_research.cache import cache_dir
from ae_research.data.storage import ScaledImages
from ae_research.errors import ConfigError
from ae_research.evaluation.baselines import fingerprint
from ae_research.metrics.arrays import float_rows

log = logging.getLogger("ae_research")
WIDTHS = (512, 128)  # Hidden layers; the last is the feature vector.
VERSION = 1  # Bump when the network or its training changes.


def _init(key, sizes: Sequence[int]):
  keys = jax.random.split(key, len(sizes) - 1)
  return [{"w": jax.random.normal(k, (a, b)) * np.sqrt(2.0 / a), "b": jnp.zeros(b)}
          for k, a, b in zip(keys, sizes[:-1], sizes[1:])]


def features(params, x: jax.Array) -> jax.Array:
  """The penultimate layer's activations (ReLU) of rows `x`."""
  h = x
  for layer in params[:-1]:
    h = jax.nn.relu(h @ layer["w"] + layer["b"])
  return h


def _logits(params, x):
  return features(params, x) @ params[-1]["w"] + params[-1]["b"]


@functools.partial(jax.jit, static_argnames=("num_classes", "epochs", "batch_size"))
def _train(x, y, key, num_classes: int, epochs: int, batch_size: int, learning_rate: float):
  params = _init(key, (x.shape[1], *WIDTHS, num_classes))
  tx = optax.adam(learning_rate)
  steps = x.shape[0] // batch_size

  def epoch(carry, k):
    params, opt_state = carry
    order = jax.random.permutation(k, x.shape[0])[:steps * batch_size].reshape(steps, batch_size)

    def step(carry, idx):
      params, opt_state = carry
      loss, grads = jax.value_and_grad(
          lambda p: optax.softmax_cross_entropy_with_integer_labels(_logits(p, x[idx]), y[idx]).mean())(params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), order)
    return (params, opt_state), losses.mean()

  (params, _), losses = jax.lax.scan(epoch, (params, tx.init(params)), jax.random.split(key, epochs))
  return params, losses


@jax.jit
def _accuracy(params, x, y):
  return jnp.mean(jnp.argmax(_logits(params, x), axis=1) == y)


class FeatureNetwork:
  """`net(images) -> (n, WIDTHS[-1])` features; `accuracy` is its test accuracy (what the features know)."""

  def __init__(self, params, accuracy: Optional[float] = None):
    self.params, self.accuracy = params, accuracy

  def __call__(self, images) -> np.ndarray:
    x = float_rows(images)
    return np.concatenate([np.asarray(features(self.params, x[i:i + 4096])) for i in range(0, len(x), 4096)])


def _raw(images) -> np.ndarray:
  return images.raw if isinstance(images, ScaledImages) else np.asarray(images)


def feature_network(data, epochs: int = 5, batch_size: int = 256, learning_rate: float = 1e-3,
                    weights: Optional[str] = None, cache: bool = True) -> FeatureNetwork:
  """The data set's feature network: from `weights`, from the cache, or trained now (and cached)."""
  if weights is not None:
    try:
      with np.load(weights) as f:
        return FeatureNetwork([{"w": jnp.asarray(f[f"w{i}"]), "b": jnp.asarray(f[f"b{i}"])}
                               for i in range(len(f.files) // 2)])
    except (OSError, KeyError, ValueError) as e:
      raise ConfigError(f"feature network weights {weights}: unreadable ({e}); give an .npz with w0, b0, w1, ...")
  settings = {"widths": WIDTHS, "epochs": epochs, "batch_size": batch_size, "lr": learning_rate, "v": VERSION}
  directory = cache_dir("feature_nets") if cache else None
  path = None
  if directory:
    key = fingerprint("feature_net", settings, [_raw(data.train["image"]), data.train["label"]])
    path = os.path.join(directory, f"{data.name}-{key}.npz")
    if os.path.exists(path):
      with np.load(path) as f:
        n = (len(f.files) - 1) // 2
        return FeatureNetwork([{"w": jnp.asarray(f[f"w{i}"]), "b": jnp.asarray(f[f"b{i}"])} for i in range(n)],
                              float(f["accuracy"]))
  log.info("training the feature network of %s (%d epochs; cached for later runs)", data.name, epochs)
  x, y = float_rows(data.train["image"][:]), jnp.asarray(data.train["label"])
  params, _ = _train(x, y, jax.random.PRNGKey(0), data.num_classes, epochs, batch_size, learning_rate)
  accuracy = float(_accuracy(params, float_rows(data.test["image"]), jnp.asarray(data.test["label"])))
  if path:
    arrays: Dict[str, np.ndarray] = {"accuracy": np.float32(accuracy)}
    for i, layer in enumerate(params):
      arrays[f"w{i}"], arrays[f"b{i}"] = np.asarray(layer["w"]), np.asarray(layer["b"])
    tmp = f"{path}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
  return FeatureNetwork(params, accuracy)

