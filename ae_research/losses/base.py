"""Loss terms and their composition.

A term is a small callable `term(ctx) -> values`: per-example values of shape (B,)
where that makes sense (reconstruction, per-example penalties), or a scalar for terms
defined on the whole batch or the parameters (KL sparsity on mean activations, weight
decay). `Objective` reduces each term (masked mean over examples), weights and sums
them, and returns `(total, {"loss": total, "<term>": unweighted value, ...})`: that dict
is what the trainer logs as `train/<term>` and `eval/<term>`.

Evaluation pads the last batch; `LossInputs.mask` marks the real examples, and both the
per-example reduction and batch-level terms (`masked_batch_mean`) honour it.
"""
import dataclasses
from typing import Any, Dict, Mapping, Optional, Protocol, Tuple

import jax
import jax.numpy as jnp

from ae_research.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class LossInputs:
  """What a term may look at; built inside the traced loss function."""
  inputs: jax.Array  # What the model saw (possibly corrupted).
  target: jax.Array  # What it should produce (the clean input, or a paired target).
  recon: jax.Array  # The model's data-space output.
  aux: Mapping[str, Any]  # The model's aux dict ("code", "logits", ...).
  model: Any  # The merged NNX module, for terms that need parameters or the encoder.
  mask: Optional[jax.Array] = None  # (B,) 1 for real examples, 0 for evaluation padding; None: all real.
  labels: Optional[jax.Array] = None  # (B,) int class labels (supervised terms).


def reconstruction_target(aux: Mapping[str, Any], batch: Mapping[str, jax.Array], clean: jax.Array) -> jax.Array:
  """What the output is compared with, in order: the model's own target (a greedy stage's
  frozen codes of the layer below), the data's paired target (colour images), the clean input."""
  if "target" in aux:
    return aux["target"]
  return batch.get("target", clean)


def masked_batch_mean(values: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
  """Mean over the batch axis of (B, ...) values, counting only the real examples."""
  if mask is None:
    return values.mean(axis=0)
  weights = mask.reshape(-1, *([1] * (values.ndim - 1)))
  return jnp.sum(values * weights, axis=0) / jnp.maximum(mask.sum(), 1.0)


class Term(Protocol):

  def __call__(self, ctx: LossInputs) -> jax.Array:
    ...


def _mean(values: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
  """Mean over the (real) examples, whatever the objective's batch reduction: metrics are per example."""
  return values.mean() if mask is None else jnp.sum(values * mask) / jnp.maximum(mask.sum(), 1.0)


class Objective:
  """Named terms with weights: `total = sum_k weight_k * reduce(term_k(ctx))`.

  Args:
    terms: name -> term.
    metrics: name -> per-example function of the same inputs, logged as `<split>/<name>`
      but not part of the loss (e.g. a classifier's accuracy).
    weights: name -> weight (missing names weigh 1.0).
    batch_reduction: "mean" over examples (default) or "sum" (e.g. SPEC 2's summed
      squared error over the batch, which sets the effective SGD step size).
    warmup_steps: name -> steps over which that term's weight ramps linearly from 0
      (e.g. the KL term of a VAE: "KL annealing").
  """

  def __init__(self, terms: Dict[str, Term], weights: Optional[Dict[str, float]] = None,
               batch_reduction: str = "mean", warmup_steps: Optional[Dict[str, int]] = None,
               metrics: Optional[Dict[str, Term]] = None):
    if not terms:
      raise ConfigError("loss.terms: an objective needs at least one term")
    for group, named in (("terms", terms), ("metrics", metrics or {})):
      for name, fn in named.items():
        if not callable(fn):
          raise ConfigError(f"loss.{group}.{name}: not a loss term (a node without _target_?); give it a "
                            "_target_ or remove it")
    clash = sorted(set(metrics or {}) & set(terms))
    if clash:
      raise ConfigError(f"loss.metrics: {', '.join(clash)} also name a term; give metrics their own names")
    weights = dict(weights or {})
    warmup_steps = dict(warmup_steps or {})
    for key, named in (("weights", weights), ("warmup_steps", warmup_steps)):
      unknown = sorted(set(named) - set(terms))
      if unknown:
        raise ConfigError(f"loss.{key}: {', '.join(unknown)} name no term; terms are {', '.join(terms)}")
    if any(v < 0 for v in warmup_steps.values()):
      raise ConfigError(f"loss.warmup_steps={warmup_steps}: steps must be >= 0")
    if batch_reduction not in ("mean", "sum"):
      raise ConfigError(f"loss.batch_reduction={batch_reduction!r}: must be mean or sum")
    self.terms = dict(terms)
    self.metrics = dict(metrics or {})  # Logged like terms, never part of the loss (e.g. accuracy).
    self.weights = {name: float(weights.get(name, 1.0)) for name in terms}
    self.batch_reduction = batch_reduction
    self.warmup_steps = {k: int(v) for k, v in warmup_steps.items() if v > 0}
    # With batch_reduction="sum", masked (evaluation) values are reported per batch of this size, so that
    # eval/<term> is comparable with train/<term> whatever the eval batch size. Set by the trainer.
    self.reference_batch_size = 1

  def _reduce(self, values: jax.Array, mask: Optional[jax.Array]) -> jax.Array:
    if values.ndim == 0:
      return values
    values = values.reshape(values.shape[0], -1).sum(axis=1) if values.ndim > 1 else values
    if mask is None:
      return values.sum() if self.batch_reduction == "sum" else values.mean()
    mean = jnp.sum(values * mask) / jnp.maximum(mask.sum(), 1.0)
    return mean * self.reference_batch_size if self.batch_reduction == "sum" else mean

  def __call__(self, ctx: LossInputs, step: Optional[jax.Array] = None) -> Tuple[jax.Array, Dict[str, jax.Array]]:
    """Returns (total loss, metrics): unweighted term values and the weighted total.

    `step` drives the warm-up ramps (no ramp when None).
    """
    weights = dict(self.weights)
    if step is not None:
      for name, steps in self.warmup_steps.items():
        weights[name] = weights[name] * jnp.minimum(1.0, step.astype(jnp.float32) / steps)
    metrics = {name: self._reduce(term(ctx), ctx.mask) for name, term in self.terms.items()}
    total = sum(weights[name] * value for name, value in metrics.items())
    metrics.update({name: jax.lax.stop_gradient(_mean(fn(ctx), ctx.mask)) for name, fn in self.metrics.items()})
    extra = {f"weight/{name}": jnp.asarray(weights[name], jnp.float32) for name in self.warmup_steps}
    return total, {"loss": total, **metrics, **extra}
