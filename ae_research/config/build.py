"""`_target_` instantiation with one-line errors.

Every node that names a `_target_` is checked against that callable's signature before
anything is built: unknown keys and values of the wrong type are reported with the
dotted config path, the accepted keys and the expected type.
"""
import collections.abc
import dataclasses
import inspect
import types
import typing
from typing import Any, Mapping, Optional, Sequence

import hydra.errors
import hydra.utils
from omegaconf import DictConfig, ListConfig, OmegaConf

from ae_research.config.schema import ENGINE_KEYS
from ae_research.errors import ConfigError, UserError

_SCALARS = (bool, int, float, str)


def _resolve_target(path: str, target: str):
  try:
    return hydra.utils.get_object(target)
  except Exception as e:  # Hydra raises ImportError or its own error types here.
    raise ConfigError(f"{path}._target_: cannot import '{target}' ({e}); fix the config's _target_") from None


def _type_ok(value: Any, annotation: Any) -> bool:
  """Loose runtime check of a config value against a constructor annotation."""
  if annotation in (inspect.Parameter.empty, Any) or value is None and _is_optional(annotation):
    return True
  origin = typing.get_origin(annotation)
  if origin in (typing.Union, types.UnionType):
    return any(_type_ok(value, a) for a in typing.get_args(annotation))
  if annotation is float:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
  if annotation is int:
    return isinstance(value, int) and not isinstance(value, bool)
  if annotation in (bool, str):
    return isinstance(value, annotation)
  if origin in (tuple, list, collections.abc.Sequence) or annotation in (tuple, list):
    if not isinstance(value, (list, tuple, ListConfig)):
      return False
    args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
    return len(args) != 1 or all(_type_ok(v, args[0]) for v in value)
  if origin in (dict, collections.abc.Mapping) or annotation is dict:
    return isinstance(value, (dict, DictConfig))
  return True  # Callables, modules, arrays: the constructor checks those.


def _is_optional(annotation: Any) -> bool:
  return type(None) in typing.get_args(annotation)


def _type_name(annotation: Any) -> str:
  if typing.get_origin(annotation) is None and hasattr(annotation, "__name__"):
    return annotation.__name__
  return str(annotation).replace("typing.", "")


def _check_node(path: str, node: DictConfig, supplied: Sequence[str] = (), engine: Sequence[str] = ()) -> None:
  fn = _resolve_target(path, node["_target_"])
  sig = inspect.signature(fn.__init__ if inspect.isclass(fn) else fn)
  params = {n: p for n, p in sig.parameters.items() if n != "self"}
  takes_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
  try:
    hints = typing.get_type_hints(fn.__init__ if inspect.isclass(fn) else fn)
  except Exception:  # Unresolvable forward references: fall back to no type checks.
    hints = {}
  for key in node.keys():
    if str(key).startswith("_") or key in engine:
      continue
    if key not in params and not takes_kwargs:
      valid = ", ".join(sorted(n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_POSITIONAL
                               and n not in supplied))
      raise ConfigError(f"{path}.{key}: unknown key for {node['_target_']}; valid keys: {valid}")
    value = node[key]
    if isinstance(value, (DictConfig, ListConfig)):
      value = OmegaConf.to_container(value, resolve=True)
    if isinstance(value, dict) and "_target_" in value:
      continue  # Nested nodes are checked on their own.
    if key in hints and not _type_ok(value, hints[key]):
      raise ConfigError(f"{path}.{key}={value!r}: expected {_type_name(hints[key])} for "
                        f"{node['_target_']}; fix the value in the config or on the command line")


def validate_config(cfg: DictConfig, supplied: Mapping[str, Sequence[str]] = None,
                    engine: Mapping[str, Sequence[str]] = None) -> None:
  """Checks every `_target_` node of `cfg` against its callable's signature.

  Args:
    cfg: the composed config.
    engine: per top-level group, keys of its node that the engine reads itself and does not pass to the
      `_target_` (e.g. `dataset.on_device`); checked by their schema instead.
    supplied: per top-level group, keyword arguments the engine passes itself
      (e.g. `model: ["input_shape"]`); they are left out of the "valid keys" hint.
  """
  supplied, engine = supplied or {}, ENGINE_KEYS if engine is None else engine

  def walk(path: str, node: Any, top: str):
    if OmegaConf.is_config(node) and node._is_none():  # e.g. an optional list left null.
      return
    if isinstance(node, DictConfig):
      schema = OmegaConf.get_type(node)
      if dataclasses.is_dataclass(schema):  # `+key=value` overrides can add keys to typed nodes.
        fields = {f.name for f in dataclasses.fields(schema)}
        extra = sorted(str(k) for k in node.keys() if k not in fields)
        if extra:
          raise ConfigError(f"{path}.{extra[0]}: unknown key for {schema.__name__}; valid keys: "
                            f"{', '.join(sorted(f for f in fields if not f.startswith('_')))}")
      if "_target_" in node:
        _check_node(path, node, supplied.get(top, ()), engine.get(top, ()) if path == top else ())
      for key in node.keys():
        walk(f"{path}.{key}" if top else str(key), node._get_node(key), top or str(key))
    elif isinstance(node, ListConfig):
      for i, item in enumerate(node):
        walk(f"{path}[{i}]", node._get_node(i), top)

  walk("config", cfg, "")


def build(node: DictConfig, path: str, engine_keys: Optional[Sequence[str]] = None, **supplied) -> Any:
  """`hydra.utils.instantiate` with the node's path in any error message; `engine_keys` (by default the
  group's ENGINE_KEYS, e.g. `dataset.on_device`) are left out: the engine reads them, not the target."""
  engine_keys = ENGINE_KEYS.get(path, ()) if engine_keys is None else engine_keys
  if engine_keys:
    node = OmegaConf.masked_copy(node, [k for k in node.keys() if k not in engine_keys])
  try:
    return hydra.utils.instantiate(node, _convert_="all", **supplied)
  except hydra.errors.InstantiationException as e:
    cause = e.__cause__ or e
    if isinstance(cause, UserError):  # Raised by the constructor itself (e.g. missing data).
      raise cause from None
    msg = str(cause).strip().splitlines()[-1] if str(cause).strip() else type(cause).__name__
    raise ConfigError(f"{path}: cannot build {node.get('_target_')}: {msg}") from e

