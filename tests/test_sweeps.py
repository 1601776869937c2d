"""Sweeps from the command line: basic, joblib and optuna; populations; resume; W&B sweep YAML."""
import csv
import json
import os
import subprocess
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from ae_research.wandb_sweep import main as wandb_sweep_main

pytestmark = pytest.mark.slow  # Subprocesses and end-to-end runs: `make test-quick` leaves them out.

SMALL = ["dataset=digits", "trainer.max_steps=8", "trainer.log_every_steps=4", "logger.progress=false",
         "evaluation.enabled=false", "logger.wandb.mode=disabled"]


def _run(sweep_dir, *overrides):
  return subprocess.run([sys.executable, "-m", "ae_research.train", "-m", *overrides, *SMALL,
                         f"hydra.sweep.dir={sweep_dir}"], capture_output=True, text=True, timeout=600)


def _multirun(sweep_dir, *overrides):
  result = _run(sweep_dir, *overrides)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def _summaries(sweep_dir, n):
  return [json.load(open(os.path.join(sweep_dir, str(i), "summary.json"))) for i in range(n)]


def test_basic_multirun_groups_compares_and_resumes(tmp_path):
  sweep = tmp_path / "sweep"
  _multirun(sweep, "seed=0,1", "optimizer.learning_rate=0.001,0.01")
  assert [s["step"] for s in _summaries(sweep, 4)] == [8] * 4
  cfg = OmegaConf.load(sweep / "0" / "config.yaml")
  assert cfg.logger.wandb.group == "sweep"  # Every run of the sweep in one W&B group.
  table = (sweep / "comparison" / "comparison.md").read_text()
  assert "optimizer.learning_rate=0.001 | 2 |" in table and "optimizer.learning_rate=0.01 | 2 |" in table
  assert (sweep / "comparison" / "curves.png").stat().st_size > 0
  # Re-running the sweep with resume skips the finished jobs and trains the unfinished one.
  os.remove(sweep / "3" / "summary.json")
  before = (sweep / "0" / "summary.json").stat().st_mtime_ns
  out = _multirun(sweep, "seed=0,1", "optimizer.learning_rate=0.001,0.01", "trainer.resume=true")
  assert out.stdout.count("already finished") == 3, out.stdout
  assert (sweep / "0" / "summary.json").stat().st_mtime_ns == before
  assert json.load(open(sweep / "3" / "summary.json"))["step"] == 8


def _errors(result):
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def test_a_bad_job_fails_alone_and_a_changed_sweep_reuses_nothing(tmp_path):
  sweep = tmp_path / "sweep"
  result = _run(sweep, "model.latent_dim=2,0,3")
  assert result.returncode == 2, result.stderr[-3000:]
  errors = _errors(result)
  assert len(errors) == 2 and errors[0].startswith("error: job #1 (") and "latent_dim and hidden sizes must be positive" in errors[0], errors
  assert errors[1].startswith("error: 1 job(s) of the sweep failed (job #1: "), errors
  assert [json.load(open(sweep / str(i) / "summary.json"))["step"] for i in (0, 2)] == [8, 8]
  assert not (sweep / "1" / "summary.json").exists()
  table = (sweep / "comparison" / "comparison.md").read_text()
  assert "## Failed jobs (1)" in table and "| 1 | failed |" in table and "must be positive" in table
  assert "model.latent_dim=2 | 1 |" in table and "model.latent_dim=3 | 1 |" in table
  rows = list(csv.DictReader(open(sweep / "comparison" / "runs.csv")))
  assert sorted(r["status"] for r in rows) == ["failed", "finished", "finished"]
  # The same sweep directory with another learning rate: the finished jobs are refused, not reused.
  before = (sweep / "0" / "summary.json").read_bytes()
  result = _run(sweep, "model.latent_dim=2,0,3", "optimizer.learning_rate=0.3", "trainer.resume=true")
  assert result.returncode == 2 and "already finished" not in result.stdout
  errors = _errors(result)
  assert sum("already holds a finished run of a different config (optimizer.learning_rate: 0.001 → 0.3)" in e
             for e in errors if e.startswith("error: job #")) == 2, errors
  assert (sweep / "0" / "summary.json").read_bytes() == before
  assert len(os.listdir(sweep / "failed_jobs")) == 3


def test_a_population_member_that_diverges_fails_alone(tmp_path):
  sweep = tmp_path / "sweep"
  result = _run(sweep, "population=on", "optimizer.learning_rate=0.001,1e39")
  assert result.returncode == 2, result.stderr[-3000:]
  errors = _errors(result)
  assert errors[0].startswith("error: job #1 (") and "training loss became nan" in errors[0], errors
  assert "population of 2 members in one program" in result.stdout + result.stderr
  assert json.load(open(sweep / "0" / "summary.json"))["step"] == 8 and not (sweep / "1" / "summary.json").exists()
  table = (sweep / "comparison" / "comparison.md").read_text()
  assert "| 1 | failed |" in table and "training loss became nan" in table


def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
  _multirun(tmp_path / "sweep", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "seed=0,1")
  assert [s["step"] for s in _summaries(tmp_path / "sweep", 2)] == [8, 8]


def test_optuna_sweeper_minimises_the_objective(tmp_path):
  _multirun(tmp_path / "sweep", "sweep=optuna_lr", "hydra.sweeper.n_trials=3")
  results = OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml")
  losses = [s["eval/loss"] for s in _summaries(tmp_path / "sweep", 3)]
  assert results.best_value == pytest.approx(min(losses))


def test_population_from_the_command_line(tmp_path):
  sweep = tmp_path / "sweep"
  out = _multirun(sweep, "population=on", "seed=0,1", "optimizer.learning_rate=0.001,0.01")
  summaries = _summaries(sweep, 4)
  assert all(s["population/size"] == 4 for s in summaries)
  assert summaries[0]["population/mesh"] == {"population": 4, "data": 1}  # 4 devices, one member each.
  assert len({s["eval/loss"] for s in summaries}) == 4
  assert "population of 4 members in one program" in out.stderr + out.stdout
  assert (sweep / "comparison" / "comparison.md").exists()
  out = _multirun(sweep, "population=on", "seed=0,1", "optimizer.learning_rate=0.001,0.01", "trainer.resume=true")
  assert (out.stdout + out.stderr).count("already finished") == 4


def test_wandb_sweep_yaml(tmp_path, capsys):
  path = tmp_path / "sweep.yaml"
  wandb_sweep_main(["sweep=lr_grid", "dataset=digits", "optimizer.b1=0.8,0.9", "-o", str(path)])
  spec = yaml.safe_load(path.read_text())
  assert spec["method"] == "grid" and spec["metric"] == {"name": "eval/loss", "goal": "minimize"}
  assert spec["parameters"]["optimizer.learning_rate"]["values"] == [3e-4, 1e-3, 3e-3, 1e-2]
  assert spec["parameters"]["optimizer.b1"]["values"] == [0.8, 0.9]
  assert spec["command"] == ["${env}", "ae-train", "dataset=digits", "${args_no_hyphens}"]
  wandb_sweep_main(["optimizer.learning_rate=tag(log,interval(1e-4,1e-2))"])
  spec = yaml.safe_load(capsys.readouterr().out)
  assert spec["method"] == "bayes"
  assert spec["parameters"]["optimizer.learning_rate"] == {"min": 1e-4, "max": 1e-2,
                                                          "distribution": "log_uniform_values"}
  with pytest.raises(SystemExit, match="nothing to sweep"):
    wandb_sweep_main(["dataset=digits"])


def test_compare_headline_shows_the_iwae_nll(tmp_path):
  from ae_research.compare import compare  # pylint: disable=g-import-not-at-top
  for i, nll in enumerate((100.0, 110.0)):
    run = tmp_path / str(i)
    run.mkdir()
    (run / "config.yaml").write_text(f"seed: {i}\nname: vae\n")
    (run / "summary.json").write_text(json.dumps({"eval/loss": nll + 1}))
    (run / "eval.json").write_text(json.dumps({"test/nll_iwae": nll}))
    (run / "metrics.jsonl").write_text("")
  out = compare([str(tmp_path)])
  table = open(os.path.join(out, "comparison.md")).read()
  assert "test/nll_iwae" in table and "105 ± 7.1" in table
