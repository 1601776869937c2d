"""Optimisers from optax by name, with learning-rate schedules and clipping.

Hyperparameters are wrapped by `optax.inject_hyperparams`, so the learning rate lives in
the optimiser state: it is logged, checkpointed, and can differ between population
members that share one compiled program.
"""
import inspect
import re
from typing import Any, Mapping, Optional, Tuple

import jax
import optax

from ae_research.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adadelta", "adagrad", "lamb", "lion", "lbfgs")
SCHEDULES = ("constant", "cosine", "warmup_cosine", "linear", "exponential")


def _schedule(kind: str, learning_rate: float, total_steps: int, warmup_steps: int,
              end_learning_rate: float, decay_rate: float) -> optax.Schedule:
  if kind == "constant":  # A number, not a schedule: inject_hyperparams then keeps it in the state.
    if warmup_steps <= 0:
      return learning_rate
    # Linear warm-up, then constant: Adam's first steps move every weight by about the learning rate
    # in the sign of its gradient, which can wreck a pre-trained network (measured on the stacked conv AE).
    return optax.warmup_constant_schedule(0.0, learning_rate, warmup_steps)
  if kind == "cosine":
    return optax.cosine_decay_schedule(learning_rate, max(total_steps, 1), alpha=end_learning_rate / learning_rate)
  if kind == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup_steps, max(total_steps, warmup_steps + 1),
                                              end_value=end_learning_rate)
  if kind == "linear":
    return optax.linear_schedule(learning_rate, end_learning_rate, max(total_steps, 1))
  return optax.exponential_decay(learning_rate, max(total_steps, 1), decay_rate)


def make_optimizer(name: str, learning_rate: float, total_steps: int, schedule: str = "constant",
                   warmup_steps: int = 0, end_learning_rate: float = 0.0, decay_rate: float = 0.1,
                   clip_grad_norm: Optional[float] = None, **kwargs) -> optax.GradientTransformation:
  """Builds `optax.<name>` with the given schedule; `kwargs` go to the optax constructor.

  `total_steps` is supplied by the trainer (for decaying schedules).
  """
  if name not in OPTIMIZERS:
    raise ConfigError(f"optimizer.name={name!r}: choose one of {', '.join(OPTIMIZERS)}")
  if schedule not in SCHEDULES:
    raise ConfigError(f"optimizer.schedule={schedule!r}: choose one of {', '.join(SCHEDULES)}")
  if not learning_rate > 0:
    raise ConfigError(f"optimizer.learning_rate={learning_rate}: must be positive")
  accepted = inspect.signature(getattr(optax, name)).parameters
  unknown = sorted(set(kwargs) - set(accepted))
  if unknown:
    raise ConfigError(f"optimizer: optax.{name} takes no {', '.join(unknown)}; "
                      f"its arguments are {', '.join(accepted)}")
  lr = _schedule(schedule, learning_rate, total_steps, warmup_steps, end_learning_rate, decay_rate)
  # Counts and flags (L-BFGS's memory_size, nesterov) shape the computation: static, not injected.
  static = tuple(k for k, v in kwargs.items() if isinstance(v, (bool, int)) and not isinstance(v, float))
  tx = optax.inject_hyperparams(getattr(optax, name), static_args=static)(learning_rate=lr, **kwargs)
  if clip_grad_norm is not None:
    tx = optax.chain(optax.clip_by_global_norm(clip_grad_norm), tx)
  return tx


def group_labels(params: Any, patterns: Mapping[str, str], default: str) -> Any:
  """A pytree like `params` naming each parameter's group: the first group whose regular expression
  matches the start of its path ("adversary" matches "adversary/layers/0/kernel"), else `default`."""
  compiled = {group: re.compile(pattern) for group, pattern in patterns.items()}

  def label(path, _):
    return next((g for g, rx in compiled.items() if rx.match(path_name(path))), default)

  return jax.tree_util.tree_map_with_path(label, params)


def path_name(path) -> str:
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def with_param_groups(tx: optax.GradientTransformation, groups: Mapping[str, Tuple[str, optax.GradientTransformation]],
                      params: Any, default: str) -> optax.GradientTransformation:
  """`tx` for the parameters no group claims and each group's own transform for its parameters, in one
  optax transform (`optax.multi_transform`): one update in the same compiled step, each group with its
  own optimiser state. Without groups, `tx` itself (the state keeps its plain layout)."""
  if not groups:
    return tx
  labels = group_labels(params, {g: pattern for g, (pattern, _) in groups.items()}, default)
  used = set(jax.tree.leaves(labels))
  paths = sorted({path_name(p[:1]) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]})
  for group, (pattern, _) in groups.items():
    if group not in used:
      raise ConfigError(f"param_groups.{group}.params={pattern!r} matches no parameter; the model's parameters "
                        f"start with {', '.join(paths)}")
  return optax.multi_transform({default: tx, **{g: t for g, (_, t) in groups.items()}}, labels)
