"""Preemption and crashes: SIGTERM saves and exits cleanly; kill -9 anywhere loses nothing."""
import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from ae_research import train_and_evaluate
from ae_research.population.runs import train_runs
from ae_research.training.saved import load_run
from ae_research.writers.jsonl import read_jsonl
import pytest

pytestmark = pytest.mark.slow  # Subprocesses and end-to-end runs: `make test-quick` leaves them out.

RUN = ["dataset=digits", "dataset.batch_size=64", "trainer.epochs=1000", "trainer.eval_batch_size=null",
       "trainer.checkpoint_min_interval_s=0",  # A checkpoint every epoch: kills often land inside one.
       "trainer.log_every_steps=5", "logger.progress=false",
       "logger.wandb.mode=disabled", "evaluation.enabled=false", "trainer.figures=false"]


def _start(run_dir, *overrides):
  return subprocess.Popen([sys.executable, "-m", "ae_research.train", *RUN, *overrides, f"hydra.run.dir={run_dir}"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_training(run_dir, proc, timeout=120):
  """Until the run has logged a training chunk (imports and compilation are behind it)."""
  path, t0 = os.path.join(run_dir, "metrics.jsonl"), time.time()
  while not (os.path.exists(path) and os.path.getsize(path) > 0):
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    assert time.time() - t0 < timeout
    time.sleep(0.05)


def _params(run_dir):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(load_run(str(run_dir), devices=1).state.params))]


def _assert_same_run(run_dir, ref_dir):
  for a, b in zip(_params(run_dir), _params(ref_dir)):
    np.testing.assert_array_equal(a, b)
  steps = [r["step"] for r in read_jsonl(str(run_dir / "metrics.jsonl")) if "train/grad_norm" in r]
  ref_steps = [r["step"] for r in read_jsonl(str(ref_dir / "metrics.jsonl")) if "train/grad_norm" in r]
  assert steps == ref_steps  # Every chunk logged once: no gaps, no duplicates.


def test_sigterm_checkpoints_and_resume_is_exact(make_cfg, tmp_path):
  steps = ["trainer.max_steps=200"]
  train_and_evaluate(make_cfg(RUN + steps), str(tmp_path / "ref"))
  proc = _start(tmp_path / "run", *steps)
  _wait_for_training(str(tmp_path / "run"), proc)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
  message = err.strip().splitlines()[-1]
  assert message.startswith("error: stopped by SIGTERM at step ") and "trainer.resume=true" in message
  stopped_at = int(message.split("at step ")[1].split()[0])
  assert stopped_at < 200 and (tmp_path / "run" / "checkpoints" / str(stopped_at)).is_dir()
  train_and_evaluate(make_cfg(RUN + steps + ["trainer.resume=true"]), str(tmp_path / "run"))
  _assert_same_run(tmp_path / "run", tmp_path / "ref")


def _last_step(run_dir):
  path = os.path.join(run_dir, "metrics.jsonl")
  try:
    return max((r["step"] for r in read_jsonl(path)), default=0)
  except (OSError, ValueError):
    return 0


def test_kill_9_at_random_moments_then_resume_is_exact(make_cfg, tmp_path):
  """Each trial SIGKILLs the run once it has passed a random step (often inside a checkpoint
  write: there is one per 22-step epoch), whatever the machine's speed."""
  steps = ["trainer.max_steps=300"]
  train_and_evaluate(make_cfg(RUN + steps), str(tmp_path / "ref"))
  rng, run_dir, killed_at = random.Random(int(os.environ.get("AE_KILL_SEED", "0"))), tmp_path / "run", []
  for trial in range(4):
    target = _last_step(str(run_dir)) + rng.randint(5, 50)
    proc = _start(run_dir, *steps, *(["trainer.resume=true"] if trial else []))
    t0 = time.time()
    while proc.poll() is None and _last_step(str(run_dir)) < target and time.time() - t0 < 120:
      time.sleep(0.03)
    time.sleep(rng.uniform(0.0, 0.05))
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.kill()
    proc.communicate(timeout=60)
    killed_at.append(_last_step(str(run_dir)))
  assert killed_at[-1] < 300
  train_and_evaluate(make_cfg(RUN + steps + ["trainer.resume=true"]), str(run_dir))
  _assert_same_run(run_dir, tmp_path / "ref")
  assert json.load(open(run_dir / "summary.json"))["step"] == 300


POP = ["dataset=digits", "dataset.batch_size=64", "trainer.epochs=1000", "trainer.max_steps=150",
       "trainer.eval_batch_size=null", "trainer.checkpoint_min_interval_s=0", "trainer.log_every_steps=5",
       "logger.progress=false", "logger.wandb.mode=disabled", "evaluation.enabled=false", "trainer.figures=false"]


def _population(sweep_dir, *extra):
  return subprocess.Popen([sys.executable, "-m", "ae_research.train", "-m", "population=on", "seed=0,1", *POP, *extra,
                           f"hydra.sweep.dir={sweep_dir}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigterm_stops_a_population_which_resumes_exactly(make_cfg, tmp_path):
  # The reference is the same two-member population trained in this process (one process start fewer).
  train_runs([make_cfg(POP + [f"seed={seed}"], fast=False) for seed in (0, 1)],
             [str(tmp_path / "ref" / member) for member in ("0", "1")])
  proc = _population(tmp_path / "run")
  log = tmp_path / "run" / "0" / "metrics.jsonl"
  t0 = time.time()
  while not (log.exists() and log.stat().st_size > 0):
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    assert time.time() - t0 < 120
    time.sleep(0.05)
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
  assert "stopped by SIGTERM at step" in err and "trainer.resume=true" in err
  stopped_at = int(err.split("at step ")[1].split()[0])
  assert stopped_at < 150
  for member in ("0", "1"):
    assert (tmp_path / "run" / member / "checkpoints" / str(stopped_at)).is_dir()
  resumed = _population(tmp_path / "run", "trainer.resume=true")
  assert resumed.wait(timeout=300) == 0, resumed.communicate()[1][-2000:]
  for member in ("0", "1"):
    for a, b in zip(_params(tmp_path / "run" / member), _params(tmp_path / "ref" / member)):
      np.testing.assert_array_equal(a, b)
    steps = [r["step"] for r in read_jsonl(tmp_path / "run" / member / "metrics.jsonl") if "train/grad_norm" in r]
    assert steps == [r["step"] for r in read_jsonl(tmp_path / "ref" / member / "metrics.jsonl")
                     if "train/grad_norm" in r]
