"""The `ae-train` command: Hydra overrides, one-line user errors, exit codes, outputs kept."""
import json
import os
import subprocess
import sys

import pytest
from conftest import xla_flags  # tests/ is on sys.path

from ae_research.train import main

pytestmark = pytest.mark.slow  # Subprocesses and end-to-end runs: `make test-quick` leaves them out.

ENV = {**os.environ, "WANDB_MODE": "disabled", "XLA_FLAGS": xla_flags(2)}
FAST = ["dataset=digits", "model.hidden=[16]", "trainer.max_steps=12", "trainer.log_every_steps=4",
        "trainer.eval_batch_size=null", "logger.progress=false", "logger.wandb.mode=disabled"]


def _train(*overrides):
  return subprocess.run([sys.executable, "-m", "ae_research.train", *overrides], capture_output=True, text=True,
                        env=ENV, timeout=300, check=False)


def test_train_command_writes_outputs(tmp_path):
  result = _train(*FAST, f"hydra.run.dir={tmp_path}", "seed=3", "optimizer=rmsprop", "optimizer.learning_rate=1e-3",
                  "dataset.batch_size=32", "model.latent_dim=3", "trainer.epochs=1")
  assert result.returncode == 0, result.stderr[-2000:]
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["step"] == 12 and summary["n_devices"] == 2
  assert f"outputs in {tmp_path}" in result.stdout
  assert (tmp_path / ".hydra" / "config.yaml").exists()


def _main(monkeypatch, capfd, *args):
  """`ae-train ARGS` in this process, through the command's own parsing, composition, error handling
  and exit; returns (exit status, stderr). Hydra's logging set-up stays off: its `dictConfig` would
  close the handlers pytest has on the root logger."""
  monkeypatch.setattr(sys, "argv", ["ae-train", *args, "hydra/job_logging=none", "hydra/hydra_logging=none"])
  try:
    main()  # pylint: disable=no-value-for-parameter
    status = 0
  except SystemExit as e:
    status = e.code
  return status, capfd.readouterr().err


def test_a_user_error_exits_2_with_one_line_and_no_traceback(tmp_path):
  """The process boundary itself: the cases below run the same command in-process."""
  result = _train(*FAST, f"hydra.run.dir={tmp_path}", "dataset.batch_size=33")
  assert result.returncode == 2
  errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
  assert errors == ["error: dataset.batch_size=33 is not divisible by the 2 devices in use; use a multiple of 2 "
                    "(e.g. 34) or set trainer.devices"], result.stderr[-2000:]
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize("overrides, message", [
    (["dataset.batch_size=34"], "dataset.batch_size=34 is not divisible by the 4 devices in use"),
    (["trainer.epochs=-1"], "trainer.epochs=-1: must be >= 0"),
    (["trainer.log_every_steps=0"], "trainer.log_every_steps=0: must be a positive integer"),
    (["optimizer.learning_rate=-1"], "optimizer.learning_rate=-1: must be positive"),
    (["model.output_activation=tanhh"], "unknown activation 'tanhh'"),
    (["dataset=mnist", "dataset.data_dir=/nonexistent"], "dataset.data_dir=/nonexistent: no such directory"),
    (["+trainer.epoch=3"], "trainer.epoch: unknown key for TrainerConfig; valid keys: checkpoint_every_epochs"),
    (["+logger.wandb.projetc=x"], "logger.wandb.projetc: unknown key for WandbConfig"),
])
def test_user_errors_are_one_line(monkeypatch, capfd, tmp_path, overrides, message):
  status, stderr = _main(monkeypatch, capfd, *FAST, f"hydra.run.dir={tmp_path}", *overrides)
  assert status == 2
  errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
  assert len(errors) == 1 and message in errors[0], stderr[-2000:]
  assert "Traceback" not in stderr


@pytest.mark.parametrize("overrides, message", [
    (["optimizer=adamm"], "Could not find 'optimizer/adamm'"),
    (["trainer.epochs=abc"], "Value 'abc' of type 'str' could not be converted to Integer"),
    (["logger.wandb.tags=5"], "Invalid value assigned: int is not a ListConfig, list or tuple"),
])
def test_composition_errors_name_the_problem(monkeypatch, capfd, tmp_path, overrides, message):
  status, stderr = _main(monkeypatch, capfd, *FAST, f"hydra.run.dir={tmp_path}", *overrides)
  assert status not in (0, None) and message in stderr, stderr[-2000:]
  assert "Traceback" not in stderr


def test_the_last_line_lists_only_the_outputs_written(monkeypatch, capfd, tmp_path):
  monkeypatch.setattr(sys, "argv", ["ae-train", *FAST, f"hydra.run.dir={tmp_path}", "evaluation.enabled=false",
                                    "trainer.figures=false", "hydra/job_logging=none", "hydra/hydra_logging=none"])
  main()  # pylint: disable=no-value-for-parameter
  last = capfd.readouterr().out.strip().splitlines()[-1]
  assert last == f"outputs in {tmp_path}: metrics.jsonl, summary.json, checkpoints/, config.yaml", last
