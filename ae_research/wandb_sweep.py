"""`ae-wandb-sweep`: a Hydra-style sweep description -> a W&B sweep YAML.

    ae-wandb-sweep sweep=lr_grid experiment=vae_mnist_2d > sweep.yaml
    ae-wandb-sweep 'optimizer.learning_rate=tag(log,interval(1e-4,1e-2))' seed=0,1,2 --method bayes
    wandb sweep sweep.yaml && wandb agent ENTITY/PROJECT/SWEEP_ID

Sweep values come from `hydra.sweeper.params` of the composed config (e.g. `sweep=NAME`)
and from sweep overrides on the command line (`a=1,2`, `choice(...)`, `range(...)`,
`interval(...)`, `tag(log, interval(...))`); every other override is fixed. The agent's
command runs `ae-train` with `${args_no_hyphens}`, i.e. the W&B-chosen values as Hydra
overrides `key=value`, plus the fixed overrides; `ae-train` then joins the agent's run.
"""
import argparse
import sys
from typing import Any, Dict, List, Optional, Sequence

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

from ae_research.config import compose_config
from ae_research.errors import ConfigError


def _parameter(key: str, value: Any) -> Dict[str, Any]:
  """One Hydra sweep value -> a W&B parameter spec."""
  if isinstance(value, ChoiceSweep):
    return {"values": list(value.list)}
  if isinstance(value, RangeSweep):
    stop, step, x, values = value.stop, value.step, value.start, []
    while (step > 0 and x < stop) or (step < 0 and x > stop):
      values.append(x)
      x += step
    return {"values": values}
  if isinstance(value, IntervalSweep):
    log = "log" in value.tags
    return {"min": value.start, "max": value.end, "distribution": "log_uniform_values" if log else "uniform"}
  raise ConfigError(f"{key}={value!r}: not a sweep; use a,b,c, choice(...), range(...) or interval(...)")


def sweep_spec(overrides: Sequence[str], method: Optional[str] = None, project: Optional[str] = None,
               config_dir: Optional[str] = None) -> Dict[str, Any]:
  """The W&B sweep configuration (a dict) for `overrides` (see the module docstring)."""
  parser = OverridesParser.create()
  parsed = parser.parse_overrides(list(overrides))
  fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
  cfg = compose_config(fixed, return_hydra_config=True, config_dir=config_dir)
  swept = [f"{k}={v}" for k, v in (cfg.hydra.sweeper.get("params") or {}).items()]
  sweeps = parser.parse_overrides(swept) + [o for o in parsed if o.is_sweep_override()]
  parameters = {o.key_or_group: _parameter(o.key_or_group, o.value()) if o.is_sweep_override()
                else {"value": o.value()} for o in sweeps}
  if not parameters:
    raise ConfigError("nothing to sweep: pass sweep=NAME or overrides such as optimizer.learning_rate=1e-4,1e-3")
  discrete = all("values" in p or "value" in p for p in parameters.values())
  fixed = [f for f in fixed if not f.startswith(("sweep=", "hydra/"))]
  return {
      "program": "ae-train",
      "method": method or ("grid" if discrete else "bayes"),
      "metric": {"name": str(cfg.objective_metric), "goal": "minimize"},
      "parameters": parameters,
      "command": ["${env}", "ae-train", *fixed, "${args_no_hyphens}"],
      **({"project": project} if project else {"project": str(cfg.logger.wandb.project)}),
  }


def main(argv: Optional[List[str]] = None) -> None:
  ap = argparse.ArgumentParser(prog="ae-wandb-sweep", description=__doc__.splitlines()[0])
  ap.add_argument("overrides", nargs="*", help="sweep=NAME and/or Hydra overrides (sweeps and fixed values)")
  ap.add_argument("--method", choices=("grid", "random", "bayes"), help="default: grid if all discrete, else bayes")
  ap.add_argument("--project", help="W&B project (default: logger.wandb.project)")
  ap.add_argument("-o", "--output", help="write the YAML here instead of stdout")
  args = ap.parse_args(argv)
  try:
    spec = sweep_spec(args.overrides, args.method, args.project)
  except ConfigError as e:
    sys.exit(f"error: {e}")
  text = yaml.safe_dump(spec, sort_keys=False)
  if args.output:
    with open(args.output, "w") as f:
      f.write(text)
    print(f"wrote {args.output}; start it with: wandb sweep {args.output}", file=sys.stderr)
  else:
    sys.stdout.write(text)


if __name__ == "__main__":
  main()
