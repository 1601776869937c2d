"""Configs as flat {"a.b.c": value} maps, and the keys in which several configs differ."""
from typing import Any, Dict, List, Sequence

from omegaconf import DictConfig, OmegaConf

MISSING_VALUE = "<missing>"


def flatten_config(cfg: Any) -> Dict[str, Any]:
  """{"a.b.c": value} of a config (DictConfig or dict), lists kept whole."""
  tree = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update({f"{key}.{k}": v for k, v in flatten_config(value).items()})
    else:
      out[str(key)] = value
  return out


def differing_keys(cfgs: Sequence[Any]) -> List[str]:
  """Dotted config keys whose values are not the same in all `cfgs`."""
  flats = [flatten_config(c) for c in cfgs]
  keys = sorted(set().union(*flats))
  return [k for k in keys if any(f.get(k, MISSING_VALUE) != flats[0].get(k, MISSING_VALUE) for f in flats[1:])]
