"""Principal component analysis on device: the linear baseline of reconstruction, and 2-D projections."""
import functools
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

from ae_research.metrics.arrays import float_rows as _rows


@functools.partial(jax.jit, static_argnames="dim")
def pca_fit(train: jax.Array, dim: int) -> Tuple[jax.Array, jax.Array]:
  """(mean, (D, dim) principal directions, strongest first) of the rows of `train` (`eigh` of the covariance)."""
  train = _rows(train)
  mean = train.mean(axis=0)
  centred = train - mean
  _, vectors = jnp.linalg.eigh(centred.T @ centred / train.shape[0])
  return mean, vectors[:, ::-1][:, :dim]


@jax.jit
def pca_mse(mean: jax.Array, components: jax.Array, test: jax.Array) -> jax.Array:
  """Mean squared error of `test`'s rows reconstructed from their projection on `components`."""
  test = _rows(test)
  reconstruction = (test - mean) @ components @ components.T + mean
  return jnp.mean(jnp.square(reconstruction - test))


def pca_project(x, dim: int = 2) -> np.ndarray:
  """`x`'s rows on their own first `dim` principal directions (for plots of high-dimensional codes)."""
  mean, components = pca_fit(x, dim)
  return np.asarray((_rows(x) - mean) @ components)
