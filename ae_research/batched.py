"""The one way a function runs over a whole split: pad, mask, scan over sharded batches, jit.

`batch_split` pads a split on the host to whole batches and adds a 0/1 "mask";
`scan_batches` (pure, usable inside any program and under `vmap`) applies a function to
every batch with the batch axis sharded over "data". The training-time evaluation
(`training/programs.py`), eval.json's per-example metrics and figure inference
(`BatchedApply` and the functions below it) all go through it.
"""
import functools
from typing import Any, Callable, Dict, List, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax
from jax.sharding import Mesh

from ae_research.sharding import batch_sharded, put_replicated, to_host

Batch = Dict[str, jax.Array]


def pad_rows(array: np.ndarray, multiple: int) -> np.ndarray:
  """Appends zero rows so the leading dimension is a multiple of `multiple`."""
  return np.concatenate([array, np.zeros((-len(array) % multiple, *array.shape[1:]), array.dtype)])


def batch_split(split: Dict[str, np.ndarray], batch_size: int) -> Dict[str, np.ndarray]:
  """(num_batches, batch_size, ...) host arrays, zero-padded, with a float 0/1 "mask" of real rows."""
  arrays = dict(split)
  arrays["mask"] = np.ones(len(split["image"]), np.float32)
  return {k: pad_rows(v, batch_size).reshape(-1, batch_size, *v.shape[1:]) for k, v in arrays.items()}


def scan(body: Callable, carry: Any, xs: Any, unroll: bool = False) -> Tuple[Any, Any]:
  """`lax.scan(body, carry, xs)`, fully unrolled when `unroll` (XLA:CPU runs convolutions in a loop
  ~25x slower). A single step is traced as straight-line code: JAX keeps a 1-step scan a while loop
  even with unroll=True (a conv AE's 1-step chunk took 11.5 s, 0.4 s per step unrolled)."""
  if unroll and jax.tree.leaves(xs)[0].shape[0] == 1:
    carry, y = body(carry, jax.tree.map(lambda x: x[0], xs))
    return carry, jax.tree.map(lambda v: v[None], y)
  return lax.scan(body, carry, xs, unroll=bool(unroll))


def scan_batches(fn: Callable[[Batch, jax.Array], Any], batches: Batch, mesh: Mesh, rng: jax.Array,
                 unroll: bool = False, first: Any = 0) -> Any:
  """fn(batch, rng_i) for every batch (leading axis of `batches`), stacked: (num_batches, ...); batch j
  draws from fold_in(rng, first + j) (`first`: where these batches start in a longer sequence)."""
  sharding = batch_sharded(mesh)
  num = next(iter(batches.values())).shape[0]

  def body(_, xs):
    i, batch = xs
    batch = {k: lax.with_sharding_constraint(v, sharding) for k, v in batch.items()}
    return None, fn(batch, jax.random.fold_in(rng, first + i))

  return scan(body, None, (jnp.arange(num), batches), unroll)[1]


def eval_pieces(batches: Batch, unroll: bool) -> List[Batch]:
  """`batches` (leading axis: batches) as the pieces one evaluation program runs on, back to back: one
  batch each when loops are unrolled, else all (a rolled loop reuses its buffers). Unrolled over several
  batches, XLA:CPU schedules their same layers together and keeps them all live: the conv AE's eval/loss
  over 10 test batches of 1,000 had 905 MiB of temporaries, 742 MiB over 2, 141 MiB over one."""
  num = next(iter(batches.values())).shape[0]
  size = 1 if unroll else num
  return [{k: v[i:i + size] for k, v in batches.items()} for i in range(0, num, size)]


def masked_sum(per_batch: Dict[str, jax.Array], batches: Batch) -> Tuple[Dict[str, jax.Array], jax.Array]:
  """(per-batch means summed with each batch weighted by its real rows, the real rows): their ratio is the
  mean over the real examples."""
  counts = batches["mask"].sum(axis=1)
  return jax.tree.map(lambda v: jnp.tensordot(counts, v, axes=1), per_batch), counts.sum()


def unbatch(stacked: Any, num: int) -> Any:
  """Per-example host arrays: (num_batches, batch, ...) -> (num, ...), padding dropped."""
  return jax.tree.map(lambda v: np.asarray(v).reshape(-1, *v.shape[2:])[:num], to_host(stacked))


@functools.lru_cache(maxsize=128)
def _program(graphdef: nnx.GraphDef, mesh: Mesh, unroll: bool, fn: Callable, static: Tuple,
             options: Tuple = ()) -> Callable:
  """The jitted scan of `fn` over batches; one per (model structure, mesh, function, settings),
  so every caller with the same ones shares it and jit compiles once per shape."""
  kwargs = dict(static)

  def apply_batches(params, batches, rng, extra, first):  # Named in profiles and HLO dumps.
    model = nnx.merge(graphdef, params)
    return scan_batches(lambda batch, r: fn(model, batch, r, extra, **kwargs), batches, mesh, rng, unroll, first)

  return jax.jit(apply_batches, compiler_options=dict(options) or None)


class BatchedApply:
  """`fn(model, batch, rng, extra, **settings)` over whole host splits, compiled once per shape.

  `fn` is a module-level function; `settings` are hashable values fixed at compile time
  (a corruption process, a number of importance samples); `extra` is any pytree of
  traced values. Programs are shared by every instance with the same graphdef and mesh.
  """

  def __init__(self, graphdef: nnx.GraphDef, mesh: Mesh, batch_size: int, unroll: bool = False,
               compiler_options: Tuple = ()):
    self.graphdef, self.mesh, self.batch_size, self.unroll = graphdef, mesh, batch_size, unroll
    self.compiler_options = compiler_options  # Sorted (name, value) pairs (trainer.compiler_options).

  def program(self, fn: Callable, **settings) -> Callable:
    return _program(self.graphdef, self.mesh, self.unroll, fn, tuple(sorted(settings.items())), self.compiler_options)

  def __call__(self, fn: Callable, params, split: Dict[str, np.ndarray], rng: Optional[jax.Array] = None,
               extra: Any = None, **settings) -> Any:
    """Host outputs of `fn` for every real example of `split` (unrolled: one batch per program run, as
    `eval_pieces` says why; batch i draws from fold_in(rng, i) either way)."""
    program, first, outputs = self.program(fn, **settings), 0, []
    rng = jax.random.PRNGKey(0) if rng is None else rng
    for piece in eval_pieces(batch_split(split, self.batch_size), self.unroll):
      outputs.append(program(params, put_replicated(piece, self.mesh), rng, extra, jnp.int32(first)))
      first += len(piece["mask"])
    out = outputs[0] if len(outputs) == 1 else jax.tree.map(lambda *o: jnp.concatenate(o), *outputs)
    return unbatch(out, len(split["image"]))

  def images(self, fn: Callable, params, images: np.ndarray, **settings) -> Any:
    """`fn` over an image array (e.g. codes or reconstructions of some examples)."""
    return self(fn, params, {"image": np.asarray(images)}, **settings)


def encode(model, batch, rng, extra):
  del rng, extra
  return model.encode(batch["image"])


def codes(model, batch, rng, extra):
  """The flattened `aux["code"]`: what the loss and metrics call the code (for a stacked model
  at greedy stage k, layer k's code rather than the whole stack's)."""
  del rng, extra
  code = model(batch["image"])[1]["code"]
  return code.reshape(code.shape[0], -1)


def reconstruct(model, batch, rng, extra):
  """The deterministic forward pass (a VAE decodes its posterior mean)."""
  del rng, extra
  return model(batch["image"])[0]


def decode(model, batch, rng, extra):
  """Decoder outputs for codes given as the batch's "image"."""
  del rng, extra
  return model.decode(batch["image"])
