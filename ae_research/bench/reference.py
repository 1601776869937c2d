"""The speed reference: a minimal hand-written JAX training loop of the SPEC 1 model.

784-128-64-10-2 MLP autoencoder (ReLU, linear code, tanh output), MSE, Adam 1e-3, batch
256; the whole training split on device and one jitted `lax.scan` per epoch over batches
gathered from an on-device permutation. No framework: what a careful researcher would
write by hand. `ae-bench` times it beside the framework's trainer on the same data.
"""
import time
from typing import Dict, List

import jax
import jax.numpy as jnp
import numpy as np
import optax

SIZES = (784, 128, 64, 10, 2)


def init_params(rng: jax.Array, sizes=SIZES) -> List[Dict[str, jax.Array]]:
  dims = list(zip(sizes[:-1], sizes[1:])) + list(zip(sizes[::-1][:-1], sizes[::-1][1:]))
  keys = jax.random.split(rng, len(dims))
  return [{"w": jax.random.normal(k, (a, b)) / np.sqrt(a), "b": jnp.zeros(b)} for k, (a, b) in zip(keys, dims)]


def reconstruct(params, x):
  half = len(params) // 2
  h = x
  for i, layer in enumerate(params):
    h = h @ layer["w"] + layer["b"]
    if i == len(params) - 1:
      h = jnp.tanh(h)
    elif i != half - 1:  # Linear code layer.
      h = jax.nn.relu(h)
  return h


def make_epoch(num_examples: int, batch_size: int = 256, learning_rate: float = 1e-3):
  tx = optax.adam(learning_rate)
  steps = num_examples // batch_size

  def loss_fn(params, x):
    return jnp.mean(jnp.square(reconstruct(params, x) - x))

  def epoch(params, opt_state, data, rng):
    order = jax.random.permutation(rng, num_examples)[:steps * batch_size].reshape(steps, batch_size)

    def step(carry, idx):
      params, opt_state = carry
      loss, grads = jax.value_and_grad(loss_fn)(params, data[idx])
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), loss

    (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), order)
    return params, opt_state, losses

  return tx, jax.jit(epoch, donate_argnums=(0, 1))


def time_reference(images: np.ndarray, epochs: int = 3, batch_size: int = 256) -> Dict[str, float]:
  """Compile time, steady seconds per epoch (median after the first) and samples/s."""
  data = jax.device_put(images.reshape(len(images), -1).astype(np.float32))
  tx, epoch = make_epoch(len(images), batch_size)
  params = init_params(jax.random.PRNGKey(0), (data.shape[1], *SIZES[1:]))
  opt_state = tx.init(params)
  t = time.perf_counter()
  compiled = epoch.lower(params, opt_state, data, jax.random.PRNGKey(1)).compile()
  compile_s = time.perf_counter() - t
  times, losses = [], None
  for e in range(epochs):
    t = time.perf_counter()
    params, opt_state, losses = compiled(params, opt_state, data, jax.random.PRNGKey(e))
    losses.block_until_ready()
    times.append(time.perf_counter() - t)
  steady = sorted(times[1:] or times)[len(times[1:] or times) // 2]
  steps = len(images) // batch_size
  return {"compile_s": compile_s, "epoch_s": steady, "samples_per_s": steps * batch_size / steady,
          "final_loss": float(losses[-1])}
