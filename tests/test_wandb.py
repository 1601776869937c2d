"""W&B: what an offline run logged (read back from its .wandb file), and failures lose nothing."""
import glob
import json
import os
import subprocess
import sys

import pytest

from ae_research import train_and_evaluate
from ae_research.writers.jsonl import read_jsonl

pytestmark = pytest.mark.slow  # Whole training runs: `make test-quick` leaves them out.

# The CLI installed beside this interpreter (the venv's bin/ need not be on PATH).
WANDB_CLI = os.path.join(os.path.dirname(sys.executable), "wandb")


def _inspect(run_dir, *flags):
  out = subprocess.run([WANDB_CLI, "leet", "inspect", *flags, "--json", run_dir], capture_output=True, text=True,
                       check=True, timeout=120).stdout
  return out


def test_offline_run_logs_config_scalars_images_and_summary(make_cfg, tmp_path, monkeypatch):
  monkeypatch.setenv("WANDB_MODE", "offline")
  summary = train_and_evaluate(make_cfg(["logger.wandb.mode=offline", "logger.wandb.tags=[unit,test]",
                                         "logger.wandb.group=g1", "trainer.max_steps=30"]), str(tmp_path))
  runs = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))
  assert len(runs) == 1
  info = json.loads(_inspect(runs[0], "--summary"))
  assert info["state"] == "finished" and info["tags"] == ["unit", "test"] and info["name"] == "deep_ae_2d"
  assert info["run_id"] == (tmp_path / "wandb_run_id.txt").read_text()
  assert info["config"]["dataset"]["name"] == "digits" and info["config"]["trainer"]["max_steps"] == 30
  assert info["summary"]["eval/loss"] == pytest.approx(summary["eval/loss"])
  assert info["summary"]["figures/codes"]["format"] == "png"
  history = [json.loads(line)["history"]["item"] for line in _inspect(runs[0]).splitlines()
             if '"type":"history"' in line.replace(" ", "")]
  logged = {row["_step"]: row for row in history}
  local = read_jsonl(tmp_path / "metrics.jsonl")
  assert sorted(logged) == sorted({r["step"] for r in local})
  last = [r for r in local if "eval/loss" in r][-1]
  assert logged[last["step"]]["eval/loss"] == pytest.approx(last["eval/loss"])


def test_wandb_failure_keeps_local_outputs(make_cfg, tmp_path, monkeypatch, caplog):
  """W&B unreachable at init (here: wandb.init raising as it does on a network error): training
  goes on and writes everything locally."""
  import wandb  # pylint: disable=g-import-not-at-top

  def unreachable(*args, **kwargs):
    raise wandb.errors.CommError("could not reach api.wandb.ai")

  monkeypatch.setattr(wandb, "init", unreachable)
  summary = train_and_evaluate(make_cfg(["logger.wandb.mode=offline", "trainer.max_steps=10"]), str(tmp_path / "run"))
  assert "W&B init failed" in caplog.text
  assert summary["step"] == 10
  for name in ("metrics.jsonl", "summary.json", "figures/codes.png", "config.yaml"):
    assert os.path.exists(tmp_path / "run" / name), name


def test_a_study_report_is_one_more_run_of_its_group(tmp_path, monkeypatch):
  """`ae-reproduce` ends with a "report" run in the study's group: the report's figures and each verdict."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  from omegaconf import OmegaConf  # pylint: disable=g-import-not-at-top
  from ae_research.reproduce.cli import _log_report  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("WANDB_MODE", "offline")
  report_dir = tmp_path / "reports" / "toy"
  (report_dir / "figures").mkdir(parents=True)
  plt.plot([0, 1]), plt.savefig(report_dir / "figures" / "scatter.png"), plt.close()
  (report_dir / "report.md").write_text("# toy\n")
  (report_dir / "claims.json").write_text(json.dumps({"claims": [{"claim": "A beats B.", "verdict": "holds"}]}))
  wandb_cfg = OmegaConf.create({"mode": "offline", "project": "ae-research", "entity": None, "tags": ["study"]})
  _log_report(wandb_cfg, str(tmp_path / "report_run"), "toy/2026-12-03_00-00-00", str(report_dir / "report.md"))
  (run,) = glob.glob(str(tmp_path / "report_run" / "wandb" / "offline-run-*"))
  info = json.loads(_inspect(run, "--summary"))
  assert info["name"] == "toy/2026-12-03_00-00-00 report" and info["state"] == "finished", info
  assert info["summary"]["claim/0"] == "holds: A beats B." and info["summary"]["figures/scatter"]["format"] == "png"
