"""Numbers across the seeds of a study's models: mean and spread per model, the spread over seeds
against the spread between models, and rank correlations between metrics over every run.

A study names its runs `<model>_s<seed>` (labels avoid dots, as claims format them); these functions
group the runs by model and never guess a metric a run lacks (a missing one is left out of the cell).
"""
import math
import statistics
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from ae_research.reproduce.claims import Metrics


def run_label(model: str, seed: int) -> str:
  return f"{model}_s{seed}"


def model_of(label: str) -> str:
  return label.rsplit("_s", 1)[0]


def models_in(metrics: Metrics) -> List[str]:
  """Models in first-seen order (the study's order)."""
  seen: Dict[str, None] = {}
  for label in metrics:
    if label != "derived" and "_s" in label:
      seen.setdefault(model_of(label), None)
  return list(seen)


def values(metrics: Metrics, model: str, key: str) -> List[float]:
  out = []
  for label, m in metrics.items():
    if label != "derived" and model_of(label) == model and isinstance(m.get(key), (int, float)):
      if math.isfinite(m[key]):
        out.append(float(m[key]))
  return out


def per_model(metrics: Metrics, keys: Sequence[str]) -> Dict[str, Dict[str, float]]:
  """{model: {key: mean, key + ":std": std over seeds, key + ":n": seeds}} for every key a run has."""
  table: Dict[str, Dict[str, float]] = {}
  for model in models_in(metrics):
    row = {}
    for key in keys:
      v = values(metrics, model, key)
      if v:
        row[key], row[f"{key}:std"], row[f"{key}:n"] = (statistics.fmean(v),
                                                       statistics.stdev(v) if len(v) > 1 else 0.0, len(v))
    table[model] = row
  return table


def cell(row: Mapping[str, float], key: str, digits: int = 3) -> str:
  if key not in row:
    return "–"
  return f"{row[key]:.{digits}f} ± {row[f'{key}:std']:.{digits}f}"


def markdown_table(table: Mapping[str, Mapping[str, float]], columns: Sequence[Tuple[str, str]],
                   digits: int = 3) -> List[str]:
  """Rows: models; columns: (metric key, header); cells mean ± std over seeds."""
  lines = ["| model | " + " | ".join(h for _, h in columns) + " |", "|---|" + "---|" * len(columns)]
  for model, row in table.items():
    lines.append(f"| {model} | " + " | ".join(cell(row, k, digits) for k, _ in columns) + " |")
  return lines


def seed_vs_model_spread(metrics: Metrics, key: str, models: Optional[Sequence[str]] = None) -> Dict[str, float]:
  """Locatello et al. 2019's comparison: the mean over models of the std over seeds ("within") and the
  std over models of the seed means ("between"); their ratio (>= 1: seeds matter as much as the model)."""
  models = list(models or models_in(metrics))
  groups = [v for v in (values(metrics, m, key) for m in models) if len(v) > 1]
  if len(groups) < 2:
    return {}
  within = statistics.fmean(statistics.stdev(v) for v in groups)
  between = statistics.stdev(statistics.fmean(v) for v in groups)
  return {"within": within, "between": between, "ratio": within / between if between > 0 else math.inf}


def rank_correlations(metrics: Metrics, keys: Sequence[str]) -> Tuple[List[str], List[List[float]]]:
  """Spearman rank correlation between every two metrics over every run that has both (Locatello et
  al. 2019, figure 3); a metric constant over the runs has no rank and is left out."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  runs = [m for label, m in metrics.items() if label != "derived"]
  kept = [k for k in keys if len({r[k] for r in runs if k in r}) > 1]
  matrix = []
  for a in kept:
    row = []
    for b in kept:
      pairs = [(r[a], r[b]) for r in runs if a in r and b in r]
      row.append(1.0 if a == b else float(stats.spearmanr(*zip(*pairs)).statistic) if len(pairs) > 2 else math.nan)
    matrix.append(row)
  return kept, matrix


def best_seed(metrics: Metrics, model: str, key: str) -> Optional[str]:
  """The run label of `model`'s seed with the highest `key` (e.g. its best MIG), for its figures."""
  runs = [(m[key], label) for label, m in metrics.items()
          if label != "derived" and model_of(label) == model and isinstance(m.get(key), (int, float))]
  return max(runs)[1] if runs else None
