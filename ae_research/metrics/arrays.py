"""Array shapes the metrics agree on: a batch's leading axis is examples, everything after is one example."""
import jax
import jax.numpy as jnp


def per_example(x: jax.Array) -> jax.Array:
  """(B, ...) -> (B, prod(...)): one row per example.

  Elementwise work runs on the flattened rows: XLA CPU handles (B, 784) much better than (B, 28, 28, 1).
  """
  return x.reshape(x.shape[0], -1)


def float_rows(x) -> jax.Array:
  """Any array-like (host or device) as float32 rows, (N, prod(...))."""
  return per_example(jnp.asarray(x, jnp.float32))
