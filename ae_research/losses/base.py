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
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp

from ae_research.errors import ConfigError
from ae_research.models.capabilities import require


@dataclasses.dataclass(frozen=True)
class EncoderView:
  """What a term that reads "encoder" gets: the encoder as a function, and the kernel W when the
  encoder is one sigmoid Dense layer (the contractive penalty's closed form), else None."""
  encode: Callable[[jax.Array], jax.Array]
  sigmoid_kernel: Optional[jax.Array] = None


@dataclasses.dataclass(frozen=True)
class LossInputs:
  """What a term may look at; built inside the traced loss function. A term declares in `reads`
  which of the model's aux outputs it uses, and "params", "encoder" or "labels" for the fields
  below that only some terms need; the trainer checks them before training."""
  inputs: jax.Array  # What the model saw (possibly corrupted).
  target: jax.Array  # What it should produce (the clean input, or a paired target).
  recon: jax.Array  # The model's data-space output.
  aux: Mapping[str, Any]  # The model's aux dict ("code", "logits", ...).
  mask: Optional[jax.Array] = None  # (B,) 1 for real examples, 0 for evaluation padding; None: all real.
  labels: Optional[jax.Array] = None  # (B,) int class labels (supervised terms).
  params: Any = None  # The model's parameters (nnx.State of nnx.Param): for terms that read "params".
  encoder: Optional[EncoderView] = None  # For terms that read "encoder" (a function of the encoder).
  batch: Mapping[str, jax.Array] = dataclasses.field(default_factory=dict)  # Every batch array (e.g. "factors").
  dataset_size: int = 0  # Training examples (minibatch-weighted estimators need it).
  step: Optional[jax.Array] = None  # Optimiser steps taken (schedules inside a term, e.g. a capacity ramp).


# What a term can read besides the model's aux outputs.
CONTEXT_READS = ("params", "encoder", "labels")


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


class Term:
  """A loss term: `term(ctx) -> values` (per example, (B,), or a batch-level scalar).

  `reads` names the model outputs (aux keys) and context fields (CONTEXT_READS) the term uses;
  `check(model)` rejects, before training, a model the term cannot work with (e.g. BCE without a
  sigmoid output). Both are what the trainer asks at start-up, so a mismatch is a one-line error
  instead of a KeyError while tracing.
  """
  reads: Tuple[str, ...] = ()
  reconstruction: bool = False  # A pure reconstruction term (no regularisation): see setup's code-size check.

  def check(self, model) -> None:
    del model

  def __call__(self, ctx: LossInputs) -> jax.Array:
    raise NotImplementedError


class AuxOutput(Term):
  """A term that is the model's own aux output `reads[0]` (per example, as the model computes it), from a
  model with capability `needs`; `what` names the term in the error for a model without it."""
  needs: Any = None
  what: str = "this term"

  def check(self, model) -> None:
    require(model, self.needs, self.what)

  def __call__(self, ctx: LossInputs) -> jax.Array:
    return ctx.aux[self.reads[0]]


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

  def reads(self) -> set:
    """Everything any term or metric reads."""
    return {r for fn in (*self.terms.values(), *self.metrics.values()) for r in getattr(fn, "reads", ())}

  def check(self, model, outputs: Sequence[str], has_labels: bool, who: str = "loss") -> None:
    """Start-up check of every term against `model` and the aux keys it produces (`outputs`)."""
    for group, named in (("terms", self.terms), ("metrics", self.metrics)):
      for name, fn in named.items():
        where = f"{who}.{group}.{name}"
        missing = [r for r in getattr(fn, "reads", ()) if r not in outputs and r not in CONTEXT_READS]
        if missing:
          raise ConfigError(f"{where} reads {', '.join(missing)}, which model {type(model).__name__} does not produce "
                            f"(its outputs: {', '.join(sorted(outputs))}); choose a model that does, or drop the term")
        if "labels" in getattr(fn, "reads", ()) and not has_labels:
          raise ConfigError(f"{where} needs class labels; the data set has none")
        check = getattr(fn, "check", None)
        if check is not None:
          try:
            check(model)
          except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None

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
