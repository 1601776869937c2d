"""`ae-reproduce STUDY|all [--quick] [study.size=cpu|paper] [overrides...]`: train a study's runs, evaluate, and report.

Each study (reproduce/studies.py) trains its runs (populations where configs allow), sets
every claim of its source next to the comparison that makes it a claim, and writes
`reports/<study>/report.md`, `reports/index.md` and, for full runs, `experiments/<study>/README.md`.
"""
import argparse
import datetime
import os
import sys
import time
from typing import Dict, Optional, Sequence

from ae_research.errors import ConfigError, UserError
from ae_research.process import freeze_collector_at_exit
from ae_research.reproduce.report import write_experiment_readme, write_index, write_report
from ae_research.reproduce.studies import QUICK_EVAL, SIZES, STUDIES
from ae_research.run_dir import finished_summary, read_json


def _metrics(run_dir: str) -> Dict:
  return {**read_json(os.path.join(run_dir, "summary.json")), **read_json(os.path.join(run_dir, "eval.json"))}


def reproduce(name: str, quick: bool = False, overrides: Sequence[str] = (), runs_root: str = "runs/reproduce",
              reports_root: str = "reports", experiments_root: Optional[str] = None,
              resume: Optional[str] = None, size: str = "cpu") -> str:
  """Trains study `name`'s runs phase by phase and writes its report; returns the report's path.

  `resume`: an earlier attempt's directory (runs/reproduce/<name>/<time>): runs that finished are
  kept as they are, interrupted ones continue from their last checkpoint, missing ones train.
  `size`: the study's `cpu` (a 2-core CPU within hours) or `paper` (the papers' settings) overrides.
  Every run logs to one W&B group, `<name>/<time>`, so the dashboard compares them."""
  from ae_research.config import compose_config  # pylint: disable=g-import-not-at-top
  from ae_research.population.runs import train_runs  # pylint: disable=g-import-not-at-top
  study, t0 = STUDIES[name], time.perf_counter()
  if size not in SIZES:
    raise ConfigError(f"study.size={size}: choose one of {', '.join(SIZES)}")
  root = resume or os.path.join(runs_root, name, datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
  if resume and not os.path.isdir(resume):
    raise ConfigError(f"--resume {resume}: no such directory; give an earlier runs/reproduce/{name}/<time>")
  group = [f"logger.wandb.group={name}/{os.path.basename(os.path.normpath(root))}"]
  run_dirs: Dict[str, str] = {}
  for number, phase in enumerate(study.plan(quick, size)):
    # --quick shortens the first phase; later phases (fine-tuning) are shortened by the study's own plan.
    shorten = [*(study.quick if number == 0 else ()), *QUICK_EVAL] if quick else []
    labels = list(phase)
    runs = {lb: [o.format_map({"dirs": run_dirs}) for o in phase[lb]] for lb in labels}
    # The run's experiment first (its deltas), then the size, the run's own values, --quick, the command line.
    cfgs = [compose_config([*study.base(runs[lb]), *(o for o in runs[lb] if o.startswith("experiment=")),
                            *study.sizes.get(size, ()), *(o for o in runs[lb] if not o.startswith("experiment=")),
                            *shorten, *group, *overrides]) for lb in labels]
    dirs = [os.path.join(root, lb) for lb in labels]
    if resume:  # Keep finished runs; the others continue (resume=true also starts a missing run afresh).
      todo = [i for i, (c, d) in enumerate(zip(cfgs, dirs)) if finished_summary(d, c) is None]
      for i in todo:
        cfgs[i].trainer.resume = True
    else:
      todo = list(range(len(labels)))
    for i, result in zip(todo, train_runs([cfgs[i] for i in todo], [dirs[i] for i in todo])):
      if isinstance(result, Exception):
        raise result
    run_dirs.update(zip(labels, dirs))
  metrics = {lb: _metrics(d) for lb, d in run_dirs.items()}
  if study.derive is not None:
    metrics["derived"] = study.derive(metrics)
  command = "ae-reproduce " + " ".join([name] + (["--quick"] if quick else []) + ([f"study.size={size}"] if size != "cpu"
                                                                                  else []) + list(overrides))
  report = write_report(study, run_dirs, metrics, os.path.join(reports_root, name), command)
  write_index(reports_root)
  _log_report(cfgs[0].logger.wandb, os.path.join(root, "report"), group[0].split("=", 1)[1], report)
  if experiments_root and not quick:
    # A resumed study's wall time is its runs' own; members of one population share theirs (the same value).
    seconds = sum({m.get("time/total_s", 0.0) for m in metrics.values()}) if resume else time.perf_counter() - t0
    minutes = seconds / 60
    write_experiment_readme(study, study.claims, metrics, report, command, minutes, experiments_root)
  return report


def _log_report(wandb_cfg, workdir: str, group: str, report: str) -> None:
  """The report's figures and claim verdicts as one more W&B run ("report") in the study's group."""
  import json  # pylint: disable=g-import-not-at-top
  from ae_research.writers.wandb_writer import WandbWriter, resolve_mode  # pylint: disable=g-import-not-at-top
  mode = resolve_mode(wandb_cfg.mode)
  if mode == "disabled":
    return
  report_dir = os.path.dirname(report)
  figures = {os.path.relpath(os.path.join(d, f), os.path.join(report_dir, "figures"))[:-4]: os.path.join(d, f)
             for d, _, files in os.walk(os.path.join(report_dir, "figures")) for f in sorted(files) if f.endswith(".png")}
  claims = json.load(open(os.path.join(report_dir, "claims.json")))["claims"]
  os.makedirs(workdir, exist_ok=True)
  writer = WandbWriter(workdir, {"report": report}, mode, wandb_cfg.project, wandb_cfg.entity, group,
                       tags=list(wandb_cfg.tags), job_type="report", name=f"{group} report")
  writer.write_images(0, figures)
  writer.write_summary({f"claim/{i}": f"{c['verdict']}: {c['claim'][:80]}" for i, c in enumerate(claims)})
  writer.close()


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="ae-reproduce", description=__doc__.splitlines()[0])
  parser.add_argument("study", help=f"one of: all, {', '.join(STUDIES)}")
  parser.add_argument("--quick", action="store_true", help="a shortened run (about a minute per run on CPU)")
  parser.add_argument("--resume", metavar="RUNS_DIR", help="continue an earlier attempt (runs/reproduce/STUDY/TIME): "
                      "finished runs are kept, interrupted ones resume; then the report is written")
  parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every run, e.g. dataset=mnist")
  args = parser.parse_intermixed_args(argv)
  sizes = [o.split("=", 1)[1] for o in args.overrides if o.startswith("study.size=")]
  overrides = [o for o in args.overrides if not o.startswith("study.size=")]
  freeze_collector_at_exit()
  names = list(STUDIES) if args.study == "all" else [args.study]
  if args.resume and len(names) > 1:
    parser.error("--resume continues one study's runs; name the study")
  unknown = [n for n in names if n not in STUDIES]
  if unknown:
    print(f"error: unknown study {unknown[0]!r}; choose all or one of {', '.join(STUDIES)}", file=sys.stderr)
    sys.exit(2)
  for name in names:
    try:
      print(f"report: {reproduce(name, args.quick, overrides, experiments_root='experiments', resume=args.resume, size=(sizes or ['cpu'])[-1])}")
    except UserError as e:
      print(f"error: {name}: {e}", file=sys.stderr)
      sys.exit(getattr(e, "exit_code", 2))


if __name__ == "__main__":
  main()
