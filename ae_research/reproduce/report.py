"""A study's report: its claims against the measurements, the runs behind them, figures.

Writes `reports/<study>/report.md` (with its figures) and `claims.json` (the claim rows,
machine-readable), `reports/index.md` (every study's claims in one table), and for full
runs `experiments/<study>/README.md` (command, expected outcome, last measured).
"""
import datetime
import json
import os
import shutil
from typing import Any, Dict, List, Mapping, Sequence

from ae_research.reproduce.claims import Claim

HEADLINE = ("step", "eval/loss", "test/mse", "test/bce", "test/error", "test/accuracy", "test/jacobian_norm",
            "probe/linear_codes", "filters/neighbour_correlation", "filters/frac_unmoved", "codes/mean_activation",
            "time/total_s")


def _cell(value: Any) -> str:
  return f"{value:.4g}" if isinstance(value, float) else str(value)


def _copy_figures(run_dir: str, report_dir: str, label: str) -> List[str]:
  src, names = os.path.join(run_dir, "figures"), []
  if os.path.isdir(src):
    dst = os.path.join(report_dir, "figures", label)
    shutil.copytree(src, dst, dirs_exist_ok=True)
    names = sorted(f for f in os.listdir(dst) if f.endswith(".png"))
  return [f"{label}/{name}" for name in names]


def side_by_side(run_dirs: Mapping[str, str], labels: Sequence[str], path: str, title: str) -> str:
  """The runs' first-layer filter figures next to each other (one panel per run)."""
  import matplotlib.image as mpimg  # pylint: disable=g-import-not-at-top
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  from ae_research.figures import save_figure  # pylint: disable=g-import-not-at-top
  shown = [lb for lb in labels if os.path.exists(os.path.join(run_dirs[lb], "figures", "filters.png"))]
  fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 5.4), squeeze=False)
  for ax, lb in zip(axes[0], shown):
    ax.imshow(mpimg.imread(os.path.join(run_dirs[lb], "figures", "filters.png")))
    ax.set_title(lb)
    ax.axis("off")
  return save_figure(fig, path, title, dpi=110)


def write_report(study, run_dirs: Mapping[str, str], metrics: Mapping[str, Mapping[str, Any]], report_dir: str,
                 command: str) -> str:
  os.makedirs(report_dir, exist_ok=True)
  shutil.rmtree(os.path.join(report_dir, "figures"), ignore_errors=True)
  os.makedirs(os.path.join(report_dir, "figures"))
  rows = [(c, *c.assess(metrics)) for c in study.claims]
  lines = [f"# {study.name}", "", f"Command: `{command}`  ", f"Runs: `{os.path.commonpath(list(run_dirs.values()))}`  ",
           f"Date: {datetime.date.today().isoformat()}", "", "## Claims of the source vs measured", "",
           "| claim | measured | verdict |", "|---|---|---|"]
  lines += [f"| {c.text} | {measured} | {verdict} |" for c, measured, verdict in rows]
  figures: Dict[str, str] = {}
  if study.report is not None:
    extra, study_figures = study.report(metrics, run_dirs, report_dir)
    lines += ["", *extra]
    figures.update(study_figures)
  if study.side_by_side:
    figures["filters_side_by_side"] = side_by_side(
        run_dirs, study.side_by_side, os.path.join(report_dir, "figures", "filters_side_by_side.png"),
        f"{study.name}: first-layer filters, " + " | ".join(study.side_by_side))
  runs = [lb for lb in run_dirs]
  columns = [k for k in HEADLINE if any(k in metrics[lb] for lb in runs)]
  lines += ["", "## Runs", "", "| run | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
  lines += [f"| {lb} | " + " | ".join(_cell(metrics[lb].get(k, "–")) for k in columns) + " |" for lb in runs]
  lines += ["", "Every metric of every run: each run directory's `summary.json` and `eval.json`."]
  for lb in study.figure_runs:
    if lb not in run_dirs:
      continue
    lines += ["", f"## Metrics of `{lb}`", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in sorted(metrics[lb].items())]
  lines += ["", "## Figures", ""]
  lines += [f"### {name}\n\n![{name}](figures/{os.path.basename(path)})\n" for name, path in figures.items()]
  for lb in study.figure_runs:
    if lb in run_dirs:
      lines += [f"### {lb}: {name[len(lb) + 1:-4]}\n\n![{name}](figures/{name})\n"
                for name in _copy_figures(run_dirs[lb], report_dir, lb)]
  path = os.path.join(report_dir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  with open(os.path.join(report_dir, "claims.json"), "w") as f:
    json.dump({"study": study.name, "command": command, "date": datetime.date.today().isoformat(),
               "claims": [{"claim": c.text, "measured": m, "verdict": v} for c, m, v in rows]}, f, indent=2)
  return path


def write_index(reports_root: str) -> str:
  """reports/index.md: every study's claims with their measured numbers and verdicts."""
  lines = ["# Reproductions: every claim against its measurement", "",
           "| study | claim | measured | verdict |", "|---|---|---|---|"]
  for name in sorted(os.listdir(reports_root)):
    path = os.path.join(reports_root, name, "claims.json")
    if os.path.exists(path):
      record = json.load(open(path))
      lines += [f"| [{name}]({name}/report.md) | {c['claim']} | {c['measured']} | **{c['verdict']}** |"
                for c in record["claims"]]
  out = os.path.join(reports_root, "index.md")
  with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
  return out


def _description(study) -> List[str]:
  """The header comment of conf/experiment/<name>.yaml (what the experiment is), or the study's own."""
  from ae_research.config import CONFIG_DIR  # pylint: disable=g-import-not-at-top
  experiment = study.name
  if not os.path.exists(os.path.join(CONFIG_DIR, "experiment", f"{experiment}.yaml")):
    return list(study.description)
  lines = []
  for line in open(os.path.join(CONFIG_DIR, "experiment", f"{experiment}.yaml")):
    if not line.startswith("#"):
      break
    if "@package" not in line:
      lines.append(line[1:].strip())
  return lines


def write_experiment_readme(study, claims: Sequence[Claim], metrics: Mapping[str, Mapping[str, Any]],
                            report_path: str, command: str, minutes: float, experiments_root: str) -> str:
  """experiments/<study>/README.md: the command, the expected outcome (the claims), the last measurement."""
  rel = os.path.relpath(report_path, os.path.join(experiments_root, study.name))
  lines = [f"# {study.name}", "", *_description(study), "",
           f"Reproduce: `{command}` (`--quick` for a short version).", "", "## Expected outcome (the source's claims)", ""]
  lines += [f"- {c.text}" for c in claims]
  lines += ["", f"## Last measured ({datetime.date.today().isoformat()}, {minutes:.1f} min, "
            f"{len([k for k in metrics if k != 'derived'])} run(s))", "", "| claim | measured | verdict |", "|---|---|---|"]
  lines += [f"| {c.text} | {' | '.join(c.assess(metrics))} |" for c in claims]
  lines += ["", f"Runs, tables and figures: [report]({rel})."]
  path = os.path.join(experiments_root, study.name, "README.md")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path
