"""A source's claims, measured: each compares numbers from a study's runs and gives a verdict.

`measured` is a format string over the runs' metrics by run label, e.g.
"{main[test/mse]:.4f} vs {main[baseline/pca_mse]:.4f}" (labels avoid dots for that reason),
or a function of them;
the study's derived numbers (ratios, gaps, tables) are the pseudo-run "derived".
`holds` returns True/False or a verdict string ("mixed"); without it the claim is only
reported, which every claim that has a measurable comparison avoids.
"""
import dataclasses
from typing import Any, Callable, Mapping, Optional, Tuple, Union

Metrics = Mapping[str, Mapping[str, Any]]  # Run label -> that run's summary and eval.json values.
VERDICTS = ("holds", "does not hold", "mixed", "reported")


@dataclasses.dataclass(frozen=True)
class Claim:
  text: str
  measured: Union[str, Callable[[Metrics], str]]
  holds: Optional[Callable[[Metrics], Union[bool, str]]] = None

  def assess(self, metrics: Metrics) -> Tuple[str, str]:
    """(what was measured, verdict)."""
    try:
      measured = self.measured(metrics) if callable(self.measured) else self.measured.format_map(metrics)
    except (KeyError, ValueError, TypeError, IndexError) as e:
      return f"not measured (missing {e})", "n/a"
    if self.holds is None:
      return measured, "reported"
    try:
      verdict = self.holds(metrics)
    except (KeyError, TypeError, ZeroDivisionError) as e:
      return measured, f"n/a (missing {e})"
    return measured, verdict if isinstance(verdict, str) else ("holds" if verdict else "does not hold")


def both(first: bool, second: bool) -> str:
  """A claim with two parts: holds if both do, mixed if one does."""
  return "holds" if first and second else "mixed" if first or second else "does not hold"
