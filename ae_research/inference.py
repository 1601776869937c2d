"""Batched, compiled application of a trained model to a whole split (codes, reconstructions)."""
from typing import Callable

import jax
import numpy as np
from flax import nnx
from jax import lax
from jax.sharding import Mesh

from ae_research.sharding import batch_sharded, replicated
from ae_research.step import pad_rows


def apply_in_batches(graphdef: nnx.GraphDef, params: nnx.State, images: np.ndarray,
                     fn: Callable[[nnx.Module, jax.Array], jax.Array], batch_size: int, mesh: Mesh,
                     unroll: bool = False) -> np.ndarray:
  """`fn(model, batch)` over `images` in compiled, sharded batches; returns a host array."""
  n = len(images)
  batches = pad_rows(images, batch_size).reshape(-1, batch_size, *images.shape[1:])

  @jax.jit
  def run(params, batches):
    model = nnx.merge(graphdef, params)
    body = lambda _, batch: (None, fn(model, lax.with_sharding_constraint(batch, batch_sharded(mesh))))
    return lax.scan(body, None, batches, unroll=len(batches) if unroll else 1)[1]

  out = run(params, jax.device_put(batches, replicated(mesh)))
  return np.asarray(out).reshape(-1, *out.shape[2:])[:n]


def encode(graphdef, params, images, batch_size, mesh, unroll=False) -> np.ndarray:
  return apply_in_batches(graphdef, params, images, lambda m, x: m.encode(x), batch_size, mesh, unroll)


def codes(graphdef, params, images, batch_size, mesh, unroll=False) -> np.ndarray:
  """The flattened `aux["code"]` of each example: what the model's loss and metrics call its code.

  Differs from `encode` for a stacked model at a greedy stage k, whose code is layer k's.
  """
  return apply_in_batches(graphdef, params, images, lambda m, x: m(x)[1]["code"].reshape(x.shape[0], -1),
                          batch_size, mesh, unroll)


def reconstruct(graphdef, params, images, batch_size, mesh, unroll=False) -> np.ndarray:
  return apply_in_batches(graphdef, params, images, lambda m, x: m.decode(m.encode(x)), batch_size, mesh, unroll)


__all__ = ["apply_in_batches", "codes", "encode", "reconstruct"]
