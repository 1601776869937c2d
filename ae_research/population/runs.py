"""Training a list of runs: those whose configs differ only in numbers as one population each.

Runs that cannot share a program (different shapes, greedy pre-training, a value a term
branches on in Python, different resume steps) train one after another as ordinary runs.
A run's result is its summary or the user error that stopped it; a preemption
(`Interrupted`) stops everything.
"""
import logging
from typing import Any, Dict, List, Sequence, Union

from omegaconf import DictConfig

from ae_research.errors import Interrupted, UserError
from ae_research.training.sharing import group_runs
from ae_research.training import train, train_and_evaluate
from ae_research.training.programs import CannotShare

log = logging.getLogger("ae_research")
Result = Union[Dict[str, Any], Exception]


def train_runs(cfgs: Sequence[DictConfig], workdirs: Sequence[str]) -> List[Result]:
  """Trains every run, populations in one program each; returns each run's summary or error."""
  results: List[Result] = [None] * len(cfgs)
  for group in group_runs(cfgs):
    if len(group) > 1:
      try:
        for i, result in zip(group, train([cfgs[i] for i in group], [workdirs[i] for i in group])):
          results[i] = result
        continue
      except CannotShare as e:
        log.warning("population of %d runs falls back to separate programs: %s", len(group), e)
    for i in group:
      try:
        results[i] = train_and_evaluate(cfgs[i], workdirs[i])
      except Interrupted:
        raise
      except UserError as e:
        results[i] = e
  return results
