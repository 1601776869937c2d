"""Two processes x two CPU devices train exactly like one process with four devices."""
import os
import socket
import subprocess
import sys

import numpy as np

from ae_research import train_and_evaluate
from ae_research.writers.jsonl import read_jsonl
from conftest import xla_flags  # tests/ is on sys.path
import pytest

pytestmark = pytest.mark.slow  # Subprocesses and end-to-end runs: `make test-quick` leaves them out.

RUN = ["dataset=digits", "dataset.batch_size=64", "trainer.max_steps=20", "trainer.log_every_steps=5",
       "logger.progress=false", "logger.wandb.mode=disabled", "evaluation.evaluators=[reconstruction]", "trainer.figures=false"]


def _free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_two_processes_match_one_process_with_four_devices(make_cfg, tmp_path):
  one = train_and_evaluate(make_cfg(RUN), str(tmp_path / "one"))  # conftest: 4 devices in this process.
  port, run_dir = _free_port(), tmp_path / "two"
  env = {**os.environ, "XLA_FLAGS": xla_flags(2)}
  procs = [subprocess.Popen([sys.executable, "-m", "ae_research.train", *RUN, "trainer.distributed.enabled=true",
                             f"trainer.distributed.coordinator_address=127.0.0.1:{port}",
                             "trainer.distributed.num_processes=2", f"trainer.distributed.process_id={i}",
                             f"hydra.run.dir={run_dir}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True) for i in range(2)]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outs):
    assert p.returncode == 0, err[-3000:]
  two = read_jsonl(str(run_dir / "metrics.jsonl"))
  ref = read_jsonl(str(tmp_path / "one" / "metrics.jsonl"))
  losses = lambda rows: np.array([r["train/loss"] for r in rows if "train/grad_norm" in r])
  assert len(losses(two)) == 4
  np.testing.assert_allclose(losses(two), losses(ref), rtol=1e-5)
  summary = __import__("json").load(open(run_dir / "summary.json"))
  assert summary["n_devices"] == 4 and abs(summary["eval/loss"] - one["eval/loss"]) < 1e-5 * one["eval/loss"]
  assert (run_dir / "checkpoints" / "20").is_dir()  # Written collectively.
