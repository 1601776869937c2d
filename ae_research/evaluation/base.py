"""Evaluators: small classes listed in config, each saying what it needs and returning `split/key` metrics.

    evaluation:
      evaluators: [default, mig]     # names from the catalogue below; `default`: the standard ones that apply
      likelihood: {_target_: ae_research.evaluation.likelihood.Likelihood, samples: 100}
      mig: {_target_: ..., bins: 20}

Every key of `evaluation` whose value is a `_target_` node is an evaluator of the catalogue
(conf/evaluation/default.yaml holds the built-in ones; a new one is a class plus one entry there).
An evaluator declares the capabilities it needs (`models/capabilities.py`) and the data it needs
(`DataNeed`s: class labels, factors, paired targets); named explicitly, one that cannot run is a
one-line config error before training; inside `default` it is left out. The evaluators share one
`EvalContext`, which computes what several of them read (the test pass, training codes) once.
"""
import time
from typing import Any, Callable, ClassVar, Dict, List, MutableMapping, Optional, Sequence, Tuple

import numpy as np
from omegaconf import DictConfig, ListConfig

from ae_research.errors import ConfigError
from ae_research.models.capabilities import Capability, has

# The probes' examples (training subset, retrieval queries, regression halves) do not follow the
# run's seed: runs with different seeds are probed on the same examples, and the raw-pixel
# baselines are one computation per data set (cached, see baselines.py).
PROBE_SEED = 0
SETTINGS = {"enabled": bool, "evaluators": (list, ListConfig), "max_test": (int, type(None)), "cache": bool,
            "every_steps": (int, type(None)), "periodic": (list, ListConfig, type(None))}
DEFAULT = "default"


class DataNeed:
  """Something an evaluator needs of the data set (not of the model)."""

  def __init__(self, phrase: str, test: Callable[[Any], bool]):
    self.phrase, self.test = phrase, test


CLASS_LABELS = DataNeed("class labels", lambda d: d.labels_are_classes)
ORDINAL_LABELS = DataNeed("ordinal labels (a quantity per example)", lambda d: d.label_kind == "ordinal")
FACTORS = DataNeed("ground-truth factors", lambda d: d.has_factors)
PAIRED_TARGETS = DataNeed("paired targets (e.g. colour for grey input)", lambda d: d.has_paired_targets)


class Evaluator:
  """One evaluation: `__call__(ctx) -> {"split/key": value}`; `figures(ctx, figures_dir)` may draw.

  `needs`: capability classes and `DataNeed`s; `unavailable(s)` gives any further reason it cannot
  run on this setup (None: it can); `check(s)` rejects bad settings (always, before training).
  `in_default` / `included_by_default(s)`: whether `default` in `evaluation.evaluators` includes it
  (on this setup: e.g. the Jacobian norm only for objectives that penalise it).
  """
  needs: ClassVar[Tuple[Any, ...]] = ()
  in_default: ClassVar[bool] = True
  name: str = ""

  def unavailable(self, s) -> Optional[str]:
    del s
    return None

  def included_by_default(self, s) -> bool:
    del s
    return self.in_default

  def check(self, s) -> None:
    del s

  def __call__(self, ctx: "EvalContext") -> Dict[str, Any]:
    raise NotImplementedError

  def figures(self, ctx: "EvalContext", figures_dir: str) -> Dict[str, str]:
    del ctx, figures_dir
    return {}


def missing_need(evaluator: Evaluator, s) -> Optional[str]:
  """Why `evaluator` cannot run on setup `s` (its needs, then its own reason), or None."""
  for need in evaluator.needs:
    if isinstance(need, type) and issubclass(need, Capability):
      if not has(s.model, need):
        return f"needs {need.phrase}; model {type(s.model).__name__} has none"
    elif not need.test(s.data):
      return f"needs {need.phrase}; data set {s.data.name} has none"
  reason = evaluator.unavailable(s)
  return f"cannot run: {reason}" if reason else None


def catalogue(ecfg: DictConfig) -> Dict[str, DictConfig]:
  """name -> `_target_` node of every evaluator in the config's catalogue."""
  return {str(k): v for k, v in ecfg.items() if isinstance(v, DictConfig) and "_target_" in v}


def check_settings(ecfg: DictConfig) -> None:
  """`evaluation`'s own keys: known settings with the right types, or evaluator nodes."""
  for key, value in ecfg.items():
    if isinstance(value, DictConfig) and "_target_" in value:
      continue
    if key not in SETTINGS:
      raise ConfigError(f"evaluation.{key}: neither a setting ({', '.join(SETTINGS)}) nor an evaluator node "
                        "(a mapping with _target_)")
    if not isinstance(value, SETTINGS[key]) or isinstance(value, bool) and SETTINGS[key] is not bool:
      raise ConfigError(f"evaluation.{key}={value!r}: wrong type; see conf/evaluation/default.yaml")
  if ecfg.get("every_steps") is not None and ecfg.every_steps <= 0:
    raise ConfigError(f"evaluation.every_steps={ecfg.every_steps}: must be a positive number of steps or null")
  if ecfg.get("max_test") is not None and ecfg.max_test <= 0:
    raise ConfigError(f"evaluation.max_test={ecfg.max_test}: must be a positive integer or null")


def resolve(ecfg: DictConfig, s, build: Callable[[DictConfig, str], Any], key: str = "evaluators") -> List[Evaluator]:
  """The evaluators `evaluation.<key>` names (`evaluators`, or `periodic`), built and checked against setup `s`,
  in order.

  `default` expands to every catalogue evaluator with `in_default` that can run here; a name given
  explicitly that cannot run, or that is not in the catalogue, is a ConfigError.
  """
  check_settings(ecfg)
  known = catalogue(ecfg)
  out: Dict[str, Evaluator] = {}
  for entry in ecfg[key]:
    if isinstance(entry, DictConfig):  # An inline `_target_` node.
      name = str(entry.get("name", entry["_target_"].rsplit(".", 1)[-1]))
      chosen = [(name, {k: v for k, v in entry.items() if k != "name"}, True)]
    elif entry == DEFAULT:
      chosen = [(name, node, False) for name, node in known.items()]
    elif entry in known:
      chosen = [(str(entry), known[entry], True)]
    else:
      raise ConfigError(f"evaluation.{key}: no evaluator named {entry!r}; the catalogue has "
                        f"{', '.join(known)} (or `default`)")
    for name, node, explicit in chosen:
      if name in out:
        continue
      evaluator = build(DictConfig(node) if isinstance(node, dict) else node, f"evaluation.{name}")
      evaluator.name = name
      if not explicit and not evaluator.included_by_default(s):
        continue
      reason = missing_need(evaluator, s)
      if reason:
        if explicit:
          raise ConfigError(f"evaluation.{key}: {name} {reason}")
        continue
      evaluator.check(s)
      out[name] = evaluator
  return list(out.values())


class EvalContext:
  """What evaluators of one model share: its variables, the data, a batched apply, and results
  several of them read (the test pass with the codes, training codes), computed once on first use.

  `on_test_pass` (if given) is called with the test pass's per-example arrays as soon as they exist.
  """

  def __init__(self, s, variables, apply, test: Dict[str, np.ndarray], *, name: str, seed: int, cache: bool,
               figure_examples: int, test_pass: Callable[["EvalContext"], Dict[str, np.ndarray]]):
    self.s, self.variables, self.apply, self.test = s, variables, apply, test
    self.name, self.seed, self.cache, self.figure_examples = name, seed, cache, figure_examples
    self._test_pass = test_pass
    self._cached: Dict[Any, Any] = {}

  @property
  def model(self):
    return self.s.model

  @property
  def data(self):
    return self.s.data

  def once(self, key: Any, compute: Callable[[], Any]) -> Any:
    """`compute()`, the first time `key` is asked for; its value afterwards."""
    if key not in self._cached:
      self._cached[key] = compute()
    return self._cached[key]

  def test_pass(self) -> Dict[str, np.ndarray]:
    """Per-example reconstruction metrics and codes of the test split (see reconstruction.py)."""
    return self.once("test_pass", lambda: self._test_pass(self))

  @property
  def test_codes(self) -> np.ndarray:
    return self.test_pass()["code"]

  def train_subset(self, max_train: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, images, labels) of a fixed subset of at most `max_train` training examples."""
    from ae_research.evaluation.probes import subset  # pylint: disable=g-import-not-at-top
    rows = subset(self.data.num_train, max_train, PROBE_SEED)
    return rows, self.data.train["image"][rows], self.data.train["label"][rows]

  def train_codes(self, max_train: int) -> np.ndarray:
    """Codes (flattened aux["code"]) of `train_subset(max_train)`."""
    from ae_research import batched  # pylint: disable=g-import-not-at-top
    return self.once(("train_codes", max_train),
                     lambda: self.apply.images(batched.codes, self.variables, self.train_subset(max_train)[1]))


def run_all(evaluators: Sequence[Evaluator], ctx: EvalContext,
            after_each: Optional[Callable[[Evaluator], None]] = None,
            seconds: Optional[MutableMapping[str, float]] = None) -> Dict[str, Any]:
  """Every evaluator's metrics, merged (a key written twice is a bug in the catalogue); each one's wall
  time is added to `seconds[name]` (work the context shares, such as the test pass, counts for the
  first evaluator that asks for it)."""
  out: Dict[str, Any] = {}
  for evaluator in evaluators:
    t = time.perf_counter()
    metrics = evaluator(ctx)
    if seconds is not None:
      seconds[evaluator.name] = seconds.get(evaluator.name, 0.0) + time.perf_counter() - t
    clash = sorted(set(metrics) & set(out))
    if clash:
      raise ConfigError(f"evaluation.evaluators: {evaluator.name} writes {', '.join(clash)}, already written by "
                        "another evaluator; keep one of them")
    out.update(metrics)
    if after_each is not None:
      after_each(evaluator)
  return out

