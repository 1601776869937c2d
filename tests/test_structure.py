"""The package's shape: imports go from higher layers to lower ones only, and modules stay readable."""
import ast
import os

import pytest

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "ae_research")
# What may import what: a module imports only from its own layer or below; packages import each other
# in one direction only (checked below). A new module belongs to its package's layer.
LAYERS = {
    0: ("errors", "metrics", "cache", "process", "config"),
    1: ("models", "losses", "data", "sharding", "state", "optim", "batched", "step", "checkpoint", "run_dir",
        "distributed", "writers", "figures"),
    2: ("evaluation",),
    3: ("training",),
    4: ("population", "reproduce", "bench", "compare", "train", "eval_cli", "wandb_sweep", "__init__"),
}
LAYER = {name: layer for layer, names in LAYERS.items() for name in names}
MAX_LINES = 320  # "Readable in one sitting."


def _modules():
  for root, _, files in os.walk(PACKAGE):
    for f in files:
      if f.endswith(".py"):
        path = os.path.join(root, f)
        yield os.path.relpath(path, PACKAGE)[:-3].replace(os.sep, "."), path


def _unit(module: str) -> str:
  """The top-level part of ae_research a module belongs to (`training.loop` -> `training`)."""
  return module.split(".")[0]


def _imports(path: str):
  for node in ast.walk(ast.parse(open(path).read())):
    if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ae_research"):
      base = node.module[len("ae_research."):] if node.module != "ae_research" else ""
      names = [f"{base}.{a.name}".strip(".") for a in node.names] if not base else [base]
      yield from names
    elif isinstance(node, ast.Import):
      yield from (a.name[len("ae_research."):] for a in node.names if a.name.startswith("ae_research."))


def test_every_module_has_a_layer():
  assert {_unit(m) for m, _ in _modules()} <= set(LAYER), sorted({_unit(m) for m, _ in _modules()} - set(LAYER))


def test_imports_go_down_the_layers_and_packages_never_import_each_other_both_ways():
  edges = set()
  for module, path in _modules():
    for target in _imports(path):
      if not target:
        continue
      src, dst = _unit(module), _unit(target)
      assert LAYER[dst] <= LAYER[src], f"{module} (layer {LAYER[src]}) imports {target} (layer {LAYER[dst]})"
      if src != dst:
        edges.add((src, dst))
  both_ways = sorted((a, b) for a, b in edges if (b, a) in edges and a < b)
  assert not both_ways, both_ways


@pytest.mark.parametrize("module, path", sorted(_modules()))
def test_modules_are_readable_in_one_sitting(module, path):
  assert sum(1 for _ in open(path)) <= MAX_LINES, module


@pytest.mark.slow  # A fresh interpreter.
def test_a_runs_config_checks_import_no_scikit_learn():
  """Checking every `_target_` imports the modules it names, the metrics' among them: scikit-learn (about
  a second of every run's start-up) is imported by the metrics that fit with it, when they run."""
  import subprocess
  import sys
  code = ("import sys\nfrom ae_research.config import compose_config\nfrom ae_research.config.build import validate_config\n"
          "cfg = compose_config(['evaluation.evaluators=[default,mig,dci,sap,factor_vae_score,beta_vae_score]'])\n"
          "validate_config(cfg)\nimport ae_research.metrics.disentanglement, ae_research.metrics.ground_truth\n"
          "print(sorted(m for m in sys.modules if m.split('.')[0] == 'sklearn'))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
  assert out.strip() == "[]"
