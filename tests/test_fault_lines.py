"""Faults of the environment are one line, a non-zero exit status, and nothing saved lost: a full disk
(injected: no test can fill one), a read-only run directory, signals at awkward moments, a damaged
summary.json in ae-compare, a run marked failed in W&B."""
import errno
import glob
import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import QUIET

from ae_research import train_and_evaluate
from ae_research.errors import NonFiniteLossError
from ae_research.writers.jsonl import JsonlWriter, read_jsonl
from test_faults import RUN

pytestmark = pytest.mark.slow  # Subprocesses and end-to-end runs: `make test-quick` leaves them out.

STEPS = QUIET + ["trainer.max_steps=30", "trainer.checkpoint_min_interval_s=0"]  # Checkpoints at 22 and 30.

# Runs `ae-train` with one fault injected (the first argument names it); the rest is the command line.
DRIVER = r'''
import errno, os, signal, sys, time
fault, sys.argv = sys.argv[1], ["ae-train"] + sys.argv[2:]
if fault == "disk_full_checkpoint":
  import orbax.checkpoint as ocp
  save, calls = ocp.CheckpointManager.save, []
  def full(self, *args, **kwargs):
    calls.append(1)
    if len(calls) > 1:
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return save(self, *args, **kwargs)
  ocp.CheckpointManager.save = full
elif fault == "sigterm_in_evaluation":
  from ae_research.training import loop
  def evaluating(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(60)
  loop.final_evaluation = evaluating
elif fault == "second_sigint":
  from ae_research.training import loop
  run, stop = loop._Loop.run, loop._Loop.stop
  def first(self, *args):
    os.kill(os.getpid(), signal.SIGINT)
    return run(self, *args)
  def second(self, *args):
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
    return stop(self, *args)
  loop._Loop.run, loop._Loop.stop = first, second
from ae_research.train import main
main()
'''


def _drive(tmp_path, fault, *overrides):
  driver = tmp_path / "driver.py"
  driver.write_text(DRIVER)
  return subprocess.run([sys.executable, str(driver), fault, *RUN, *overrides], capture_output=True, text=True,
                        timeout=300)


def _one_error(result):
  errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
  return errors[0]


class _FullDisk:
  """A file whose writes fail with ENOSPC after `after` of them (what a full disk does)."""

  def __init__(self, f, after):
    self.f, self.left = f, after

  def write(self, text):
    self.left -= 1
    if self.left < 0:
      self.f.write(text[:7])  # Part of the line reaches the disk.
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return self.f.write(text)

  def __getattr__(self, name):
    return getattr(self.f, name)


def test_a_full_disk_while_writing_metrics_is_one_line_and_loses_nothing(make_cfg, tmp_path, monkeypatch):
  from ae_research.errors import OutputError  # pylint: disable=g-import-not-at-top  (new: fails alone without it)
  init = JsonlWriter.__init__

  def failing(self, path):
    init(self, path)
    self._file = _FullDisk(self._file, after=6)  # Records of steps 5..20, 22 and the epoch record; then full.

  monkeypatch.setattr(JsonlWriter, "__init__", failing)
  with pytest.raises(OutputError, match="cannot write .*metrics.jsonl \\(No space left on device\\); free space"):
    train_and_evaluate(make_cfg(STEPS), str(tmp_path / "run"))
  assert (tmp_path / "run" / "checkpoints" / "22").is_dir()
  monkeypatch.setattr(JsonlWriter, "__init__", init)
  summary = train_and_evaluate(make_cfg(STEPS + ["trainer.resume=true"]), str(tmp_path / "run"))
  assert summary["step"] == 30
  steps = [r["step"] for r in read_jsonl(str(tmp_path / "run" / "metrics.jsonl")) if "train/grad_norm" in r]
  assert steps == [5, 10, 15, 20, 22, 27, 30]  # The torn line dropped, every chunk logged once.


def test_a_full_disk_while_checkpointing_is_one_line_from_the_command_line(tmp_path):
  result = _drive(tmp_path, "disk_full_checkpoint", "trainer.max_steps=30", f"hydra.run.dir={tmp_path / 'run'}")
  assert result.returncode == 2
  error = _one_error(result)
  assert "cannot write the checkpoint of step 30" in error and "the checkpoint of step 22 is intact" in error, error
  assert "trainer.resume=true" in error and (tmp_path / "run" / "checkpoints" / "22").is_dir()


def _read_only(directory):
  """Makes `directory` read-only even for root (an immutable directory, where chattr works), else skips."""
  if subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode == 0:
    return lambda: subprocess.run(["chattr", "-i", str(directory)], check=True)
  if os.geteuid() == 0:
    pytest.skip("root ignores permissions and chattr +i is unavailable here: no way to make a read-only directory")
  os.chmod(directory, 0o555)
  return lambda: os.chmod(directory, 0o755)


def test_a_read_only_run_directory_is_one_line(make_cfg, tmp_path):
  run_dir = tmp_path / "run"
  train_and_evaluate(make_cfg(RUN + ["trainer.max_steps=5"], fast=False), str(run_dir))
  undo = _read_only(run_dir)
  try:
    result = subprocess.run([sys.executable, "-m", "ae_research.train", *RUN, "trainer.max_steps=10",
                             "trainer.resume=true", f"hydra.run.dir={run_dir}"], capture_output=True, text=True,
                            timeout=300)
  finally:
    undo()
  assert result.returncode == 2
  assert f"cannot write to the run directory {run_dir}" in _one_error(result)
  assert json.load(open(run_dir / "summary.json"))["step"] == 5


def test_sigterm_during_the_final_evaluation_says_how_to_evaluate(tmp_path):
  run_dir = tmp_path / "run"
  result = _drive(tmp_path, "sigterm_in_evaluation", "trainer.max_steps=30", "evaluation.enabled=true",
                  f"hydra.run.dir={run_dir}")
  assert result.returncode == 143
  error = _one_error(result)
  assert "stopped by SIGTERM during the final evaluation: training finished and is checkpointed (step 30)" in error
  assert f"ae-eval run_dir={run_dir}" in error, error
  assert (run_dir / "checkpoints" / "30").is_dir() and not (run_dir / "summary.json").exists()


def test_a_second_ctrl_c_during_the_graceful_stop_is_one_line(tmp_path):
  run_dir = tmp_path / "run"
  result = _drive(tmp_path, "second_sigint", "trainer.max_steps=200", f"hydra.run.dir={run_dir}")
  assert result.returncode == 130
  error = _one_error(result)
  assert "stopped at once by a second SIGINT" in error and "continue with trainer.resume=true" in error, error
  resumed = subprocess.run([sys.executable, "-m", "ae_research.train", *RUN, "trainer.max_steps=30",
                            "trainer.resume=true", f"hydra.run.dir={run_dir}"], capture_output=True, text=True,
                           timeout=300)
  assert resumed.returncode == 0, resumed.stderr[-2000:]


def test_ae_compare_with_a_damaged_summary_is_one_line(tmp_path, capsys):
  from ae_research.compare import main as compare_main  # pylint: disable=g-import-not-at-top
  for i in range(2):
    run = tmp_path / str(i)
    run.mkdir()
    (run / "config.yaml").write_text(f"seed: {i}\nname: ae\n")
    (run / "summary.json").write_text(json.dumps({"eval/loss": 1.0 + i}))
    (run / "metrics.jsonl").write_text("")
  (tmp_path / "1" / "summary.json").write_text('{"eval/loss": 1.')  # Torn by a full disk.
  with pytest.raises(SystemExit) as info:
    compare_main([str(tmp_path)])
  message = str(info.value.code)
  assert message.startswith("error: ") and "\n" not in message
  assert f"{tmp_path / '1' / 'summary.json'} cannot be read" in message and "trainer.resume=true" in message
  assert not (tmp_path / "comparison").exists()


def test_a_diverged_run_is_marked_failed_in_wandb(make_cfg, tmp_path, monkeypatch):
  from test_run_safety import _diverging  # pylint: disable=g-import-not-at-top
  from test_wandb import _inspect  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("WANDB_MODE", "offline")
  with pytest.raises(NonFiniteLossError) as info:
    train_and_evaluate(make_cfg(_diverging("logger.wandb.mode=offline")), str(tmp_path))
  run = glob.glob(str(tmp_path / "wandb" / "offline-run-*"))[0]
  summary = json.loads(_inspect(run, "--summary"))
  assert summary["state"] == "failed", summary
  assert summary["summary"]["status"] == "failed" and summary["summary"]["error"] == str(info.value)
  shutil.rmtree(tmp_path / "wandb")
