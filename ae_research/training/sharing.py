"""Which runs can share one compiled program (a population), and how their differing numbers enter it.

Runs can train together when their configs differ only in values that leave every array
shape and every traced branch alone: the seed, numeric loss and corruption settings
(weights, rho, noise level, ...) and the optimiser's injected hyperparameters (learning
rate with a constant schedule, b1, weight decay, ...). `group_key` blanks exactly those
values; runs with equal keys form a population.

Inside one program the members' differing numbers are traced values: `numeric_leaves`
finds, by walking the built objects (objective, corruption), the attributes whose numbers
differ between members, and `with_values` rebuilds a member's object around traced values
at those paths. Derived attributes (a log of rho computed at construction, say) are found
the same way, so no term needs to know it is part of a population.
"""
import copy
import functools
import numbers
import types
from typing import Any, Dict, List, Sequence, Tuple

import jax
import numpy as np
from omegaconf import DictConfig, OmegaConf

from ae_research.errors import ConfigError

Path = Tuple[Tuple[str, Any], ...]  # (("attr", name) | ("key", k) | ("idx", i), ...)
VARIES = "<varies within a population>"
# make_optimizer's own arguments; any other numeric optimizer key is an optax hyperparameter,
# which optax.inject_hyperparams keeps in the optimiser state (so it may differ per member).
_OPTIMIZER_STRUCTURE = ("name", "total_steps", "schedule", "warmup_steps", "end_learning_rate", "decay_rate",
                        "clip_grad_norm")
# Keys that never change the compiled program.
_FREE = ("seed", "name", "logger", "evaluation", "objective_metric")
# Leaves even though they have a __dict__: compared whole, never walked into.
_OPAQUE = (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType,
           functools.partial, np.ndarray, jax.Array)


def _is_number(value: Any) -> bool:
  return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _blank_numbers(node: Any) -> Any:
  if isinstance(node, dict):
    return {k: _blank_numbers(v) for k, v in node.items()}
  if isinstance(node, list):
    return [_blank_numbers(v) for v in node]
  return VARIES if _is_number(node) else node


def _blank_hyperparameters(opt: Dict[str, Any]) -> Dict[str, Any]:
  """An optimizer node with its injected hyperparameters blanked (a constant schedule keeps them in the state)."""
  if opt.get("_target_") == "ae_research.optim.make_optimizer" and opt.get("schedule", "constant") == "constant":
    return {k: VARIES if _is_number(v) and k not in _OPTIMIZER_STRUCTURE else v for k, v in opt.items()}
  return opt


def group_key(cfg: DictConfig) -> str:
  """Equal for runs that can train in one program (see the module docstring)."""
  tree = OmegaConf.to_container(cfg, resolve=True)
  for key in _FREE:
    tree.pop(key, None)
  for key in ("loss", "corruption"):
    if tree.get(key) is not None:
      tree[key] = _blank_numbers(tree[key])
  tree["optimizer"] = _blank_hyperparameters(tree.get("optimizer") or {})
  for group in (tree.get("param_groups") or {}).values():  # Each group's optimiser injects its numbers too.
    group["optimizer"] = _blank_hyperparameters(group.get("optimizer") or {})
  trainer = tree.get("trainer") or {}
  for key in ("resume", "init_from"):  # Where a member starts, not what the program computes.
    trainer.pop(key, None)
  return repr(tree)


def can_join_population(cfg: DictConfig) -> bool:
  """Greedy layer-wise pre-training runs several programs in sequence; it trains alone, as does a run
  with trainer.share_program=false."""
  return cfg.trainer.greedy_epochs == 0 and cfg.trainer.get("share_program", True)


def group_runs(cfgs: Sequence[DictConfig]) -> List[List[int]]:
  """Indices of `cfgs` grouped into populations, in first-appearance order."""
  groups: Dict[str, List[int]] = {}
  for i, cfg in enumerate(cfgs):
    key = group_key(cfg) if can_join_population(cfg) else f"alone:{i}"
    groups.setdefault(key, []).append(i)
  return list(groups.values())


def _children(obj: Any):
  if isinstance(obj, dict):
    return [(("key", k), v) for k, v in obj.items()]
  if isinstance(obj, (list, tuple)):
    return [(("idx", i), v) for i, v in enumerate(obj)]
  if hasattr(obj, "__dict__") and not isinstance(obj, _OPAQUE):  # A term, noise model, ...: walk its attributes.
    return [(("attr", k), v) for k, v in vars(obj).items()]
  return None


def _leaves(obj: Any, path: Path = ()) -> Dict[Path, Any]:
  children = _children(obj)
  if children is None:
    return {path: obj}
  out = {}
  for step, child in children:
    out.update(_leaves(child, path + (step,)))
  return out


def _same(a: Any, b: Any) -> bool:
  try:
    return bool(np.all(a == b)) if isinstance(a, np.ndarray) else bool(a == b)
  except Exception:  # Objects without a usable ==: compare their types only.
    return type(a) is type(b)


def numeric_leaves(objects: Sequence[Any], what: str) -> Dict[Path, np.ndarray]:
  """Paths whose numbers differ between `objects`, with the stacked values (K,).

  Raises ConfigError when the objects differ in anything but numbers.
  """
  trees = [_leaves(o) for o in objects]
  if any(t.keys() != trees[0].keys() for t in trees):
    raise ConfigError(f"population: the members' {what} differ in structure; they cannot share one program")
  varying = {}
  for path, first in trees[0].items():
    values = [t[path] for t in trees]
    if all(_same(v, first) for v in values[1:]):
      continue
    if not all(_is_number(v) or isinstance(v, np.ndarray) for v in values):
      raise ConfigError(f"population: the members' {what} differ at {format_path(path)} ({values[0]!r} vs "
                        f"{values[1]!r}), which is not a number; they cannot share one program")
    varying[path] = np.stack([np.asarray(v, np.float32) for v in values])
  return varying


def with_values(obj: Any, values: Dict[Path, Any]) -> Any:
  """A copy of `obj` with the leaves at `values`' paths replaced (copies only along them)."""
  if not values:
    return obj
  heads: Dict[Tuple[str, Any], Dict[Path, Any]] = {}
  for path, value in values.items():
    if not path:
      return value
    heads.setdefault(path[0], {})[path[1:]] = value
  if isinstance(obj, dict):
    out = dict(obj)
    for (_, k), rest in heads.items():
      out[k] = with_values(obj[k], rest)
    return out
  if isinstance(obj, (list, tuple)):
    items = list(obj)
    for (_, i), rest in heads.items():
      items[i] = with_values(obj[i], rest)
    return type(obj)(items)
  out = copy.copy(obj)
  for (_, name), rest in heads.items():
    object.__setattr__(out, name, with_values(getattr(obj, name), rest))
  return out


def format_path(path: Path) -> str:
  return "".join(f".{p}" if kind == "attr" else f"[{p!r}]" for kind, p in path)
