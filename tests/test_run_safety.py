"""Runs that cannot be silently corrupted: one process per run directory, a finished run reused and
a run resumed only under its own config, no checkpoint with NaN in it, damaged checkpoints skipped."""
import glob
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from conftest import QUIET, digest_tree

from ae_research import train_and_evaluate
from ae_research.errors import CheckpointError, NonFiniteLossError
from ae_research.training.saved import load_run
from ae_research.writers.jsonl import read_jsonl
from test_faults import RUN, _start, _wait_for_training

pytestmark = pytest.mark.slow  # Subprocesses and end-to-end runs: `make test-quick` leaves them out.

SHORT = QUIET + ["trainer.max_steps=5"]
LOCK_FILE = ".lock"
# Imported in the tests that use them (ae_research.run_dir.lock, .fingerprint, errors.RunInUseError), so that
# each test fails on its own on code without them.


def _errors(stderr):
  return [line for line in stderr.splitlines() if line.startswith("error: ")]


def test_a_second_process_on_a_run_directory_exits_at_once_naming_the_holder(tmp_path):
  run_dir = tmp_path / "run"
  first = _start(run_dir)
  try:
    _wait_for_training(str(run_dir), first)
    hydra_before = digest_tree(run_dir / ".hydra")
    t0 = time.time()
    second = subprocess.run([sys.executable, "-m", "ae_research.train", *RUN, "trainer.resume=true",
                             f"hydra.run.dir={run_dir}"], capture_output=True, text=True, timeout=180)
    assert second.returncode == 2, second.stderr[-2000:]
    assert time.time() - t0 < 60  # Before any data set or program is built.
    errors = _errors(second.stderr)
    assert len(errors) == 1 and str(run_dir) in errors[0] and f"pid {first.pid}" in errors[0], second.stderr[-2000:]
    assert "Traceback" not in second.stderr
    assert first.poll() is None and digest_tree(run_dir / ".hydra") == hydra_before
  finally:
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
  assert first.returncode == 128 + signal.SIGTERM
  assert not (run_dir / LOCK_FILE).exists()  # Released on exit.


def test_a_stale_lock_is_taken_over_and_a_live_or_foreign_one_refused(make_cfg, tmp_path, caplog):
  from ae_research.errors import RunInUseError  # pylint: disable=g-import-not-at-top
  from ae_research.run_dir import lock  # pylint: disable=g-import-not-at-top
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  run_dir = tmp_path / "stale"
  run_dir.mkdir()
  (run_dir / LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                    "started": "yesterday"}))
  with caplog.at_level(logging.WARNING, logger="ae_research"):
    assert train_and_evaluate(make_cfg(SHORT), str(run_dir))["step"] == 5
  assert f"took over the lock left by pid {dead.pid}" in caplog.text
  assert not (run_dir / LOCK_FILE).exists()
  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / LOCK_FILE).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "now"}))
  with pytest.raises(RunInUseError, match="in use by pid 1 on host elsewhere .*if that process is gone, delete"):
    train_and_evaluate(make_cfg(SHORT), str(foreign))
  holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from ae_research.run_dir import lock; "
                             "lock.acquire(sys.argv[1]); print('held', flush=True); time.sleep(120)",
                             str(tmp_path / "held")], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RunInUseError, match=f"in use by pid {holder.pid} on this host"):
      lock.acquire(str(tmp_path / "held"))
  finally:
    holder.kill()
    holder.wait()
  lock.release(lock.acquire(str(tmp_path / "held")))  # Its owner is dead (kill -9): taken over.


def test_the_fingerprint_ignores_only_what_may_change():
  from ae_research.run_dir import fingerprint  # pylint: disable=g-import-not-at-top
  assert fingerprint.kind("trainer.epochs") == fingerprint.kind("logger.wandb.mode") == "ignored"
  assert fingerprint.kind("evaluation.knn.k") == fingerprint.kind("trainer.devices") == "ignored"
  assert fingerprint.kind("optimizer.learning_rate", 1e-3, 0.3) == "resumable"
  assert fingerprint.kind("optimizer.b1", 0.9, 0.8) == fingerprint.kind("optimizer.warmup_steps", 0, 5) == "resumable"
  for key in ("seed", "model.activation", "dataset.scale", "loss.weights.kl", "corruption.probability", "task.name",
              "optimizer.name", "optimizer.schedule", "trainer.init_from"):
    assert fingerprint.kind(key, 0, 1) == "identity", key
  assert fingerprint.kind("optimizer.memory_size", 10, 20) == "identity"  # Static in optax: shapes the state.
  old = {"seed": 0, "corruption": None, "dataset.name": "digits"}
  new = {"seed": 0, "corruption.probability": 0.3, "dataset.name": "digits", "dataset.on_device": "auto"}
  assert list(fingerprint.changes(old, new)) == ["corruption", "corruption.probability"]  # A key added by code is not.


def _main(monkeypatch, capfd, *args):
  from ae_research.train import main  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(sys, "argv", ["ae-train", *args, "hydra/job_logging=none", "hydra/hydra_logging=none"])
  try:
    main()
    status = 0
  except SystemExit as e:
    status = e.code
  captured = capfd.readouterr()
  return status, captured.out, captured.err


def test_finished_and_resumed_runs_keep_their_config(monkeypatch, capfd, tmp_path):
  from conftest import FAST  # pylint: disable=g-import-not-at-top
  run_dir = tmp_path / "run"
  cli = [*FAST, *QUIET, f"hydra.run.dir={run_dir}"]
  status, _, err = _main(monkeypatch, capfd, *cli, "trainer.max_steps=5")
  assert status == 0, err[-2000:]
  before = digest_tree(run_dir)
  # A finished MLP run is not "already finished" for a VAE.
  status, out, err = _main(monkeypatch, capfd, *cli, "trainer.max_steps=5", "trainer.resume=true", "model=vae")
  assert status == 2 and "skipped" not in out
  assert len(_errors(err)) == 1 and "already holds a finished run of a different config (model._target_" in err, err
  # A resume that changes what the run trains is refused, and touches no file (.hydra/ included).
  status, _, err = _main(monkeypatch, capfd, *cli, "trainer.max_steps=10", "trainer.resume=true", "seed=1")
  assert status == 2 and "trainer.resume=true with a changed config (seed: 0 → 1)" in err, err
  # Fewer steps than done: explained, summary.json untouched.
  status, _, err = _main(monkeypatch, capfd, *cli, "trainer.max_steps=3", "trainer.resume=true")
  assert status == 2 and "the run already has 1 epoch (5 steps)" in err, err
  assert digest_tree(run_dir) == before
  # A lowered learning rate and more steps: allowed, recorded; config.yaml keeps the original.
  status, _, err = _main(monkeypatch, capfd, *cli, "trainer.max_steps=10", "trainer.resume=true",
                         "optimizer.learning_rate=0.0005")
  assert status == 0, err[-2000:]
  resumes = read_jsonl(str(run_dir / "resumes.jsonl"))
  assert len(resumes) == 1 and resumes[0]["step"] == 5 and set(resumes[0]) >= {"time", "step", "changed"}
  assert resumes[0]["changed"] == {"optimizer.learning_rate": [0.001, 0.0005], "trainer.max_steps": [5, 10]}
  assert "learning_rate: 0.001" in (run_dir / "config.yaml").read_text()
  assert load_run(str(run_dir), devices=1).cfg.optimizer.learning_rate == 0.0005  # Config + resumes.
  # Re-run as it was last asked for: reused; with the old learning rate: refused, naming it.
  status, out, _ = _main(monkeypatch, capfd, *cli, "trainer.max_steps=10", "trainer.resume=true",
                         "optimizer.learning_rate=0.0005")
  assert status == 0 and "already finished" in out
  status, _, err = _main(monkeypatch, capfd, *cli, "trainer.max_steps=10", "trainer.resume=true")
  assert status == 2 and "optimizer.learning_rate: 0.0005 → 0.001" in err and "raise trainer.epochs" in err, err


def _diverging(*extra):
  # The first step's learning rate is 0 (warm-up), the second's 3e38: RMSProp's update (about 2x the learning
  # rate) overflows, so the parameters turn inf at step 2 while its loss, computed before the update, is finite.
  return QUIET + ["optimizer=rmsprop", "optimizer.learning_rate=3e38", "optimizer.warmup_steps=1",
                  "trainer.log_every_steps=1",
                  "trainer.checkpoint_every_steps=1", "trainer.checkpoint_min_interval_s=0", "trainer.max_steps=6",
                  *extra]


@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
def test_all_finite_reads_host_memory_in_place_and_agrees_with_the_compiled_check(bad):
  from ae_research import checkpoint  # pylint: disable=g-import-not-at-top
  mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
  sharded = jax.device_put(jnp.arange(8.0), jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
  tree = {"w": jnp.ones((3, 2), jnp.bfloat16), "b": sharded, "count": jnp.int32(7), "host": np.zeros(2, np.float32)}
  if bad is not None:
    tree["b"] = tree["b"].at[5].set(bad)  # One value of one shard of a sharded leaf.
  leaves = [x for k, x in sorted(tree.items()) if k != "count"]
  assert all(checkpoint._in_host_memory(x) for x in leaves)  # pylint: disable=protected-access
  assert checkpoint.all_finite(tree) is (bad is None) is bool(checkpoint._finite(leaves))  # pylint: disable=protected-access


def test_a_diverged_run_keeps_no_poisoned_checkpoint_and_ae_eval_refuses_one(make_cfg, tmp_path, capsys):
  from ae_research.eval_cli import main as eval_main  # pylint: disable=g-import-not-at-top
  run_dir = tmp_path / "run"
  with pytest.raises(NonFiniteLossError) as info:
    train_and_evaluate(make_cfg(_diverging()), str(run_dir))
  message = str(info.value)
  assert "the last finite checkpoint is step 1;" in message and "\n" not in message, message
  steps = sorted(int(os.path.basename(p)) for p in glob.glob(str(run_dir / "checkpoints" / "*")))
  assert steps == [1]
  run = load_run(str(run_dir), devices=1)
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(run.state.params))
  # A poisoned checkpoint (as earlier versions kept) is refused by ae-eval in one line.
  poisoned = run.state.replace(params=jax.tree.map(lambda x: x * jnp.nan, run.state.params), step=run.state.step + 1)
  manager = ocp.CheckpointManager(str(run_dir / "checkpoints"))
  manager.save(2, args=ocp.args.StandardSave(poisoned))
  manager.wait_until_finished()
  manager.close()
  with pytest.raises(SystemExit) as exit_info:
    eval_main([f"run_dir={run_dir}", "evaluation.evaluators=[reconstruction]", "trainer.figures=false"])
  assert exit_info.value.code == 2
  errors = _errors(capsys.readouterr().err)
  assert len(errors) == 1 and "hold NaN or inf values" in errors[0] and "(step 2)" in errors[0], errors
  assert not (run_dir / "eval.json").exists()


def test_a_damaged_newest_checkpoint_is_skipped_and_set_aside(make_cfg, tmp_path, caplog):
  steps = ["trainer.checkpoint_min_interval_s=0"]
  train_and_evaluate(make_cfg(QUIET + steps + ["trainer.max_steps=40"]), str(tmp_path / "ref"))
  run_dir = tmp_path / "run"
  train_and_evaluate(make_cfg(QUIET + steps + ["trainer.max_steps=30"]), str(run_dir))  # Checkpoints 22 and 30.
  hopeless = tmp_path / "hopeless"
  shutil.copytree(run_dir, hopeless)
  for data in glob.glob(str(run_dir / "checkpoints" / "30" / "default" / "**" / "d" / "*"), recursive=True):
    with open(data, "r+b") as f:
      f.truncate(os.path.getsize(data) // 2)
  partial = run_dir / "checkpoints" / "31.orbax-checkpoint-tmp-1234567"  # As a kill -9 mid-save leaves it.
  partial.mkdir()
  (partial / "junk").write_text("half")
  with caplog.at_level(logging.WARNING, logger="ae_research"):
    summary = train_and_evaluate(make_cfg(QUIET + steps + ["trainer.max_steps=40", "trainer.resume=true"]),
                                 str(run_dir))
  assert summary["step"] == 40
  warned = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
  assert len(warned) == 1 and "checkpoint 30 cannot be read" in warned[0] and "from step 22" in warned[0], warned
  assert (tmp_path / "run" / "damaged_checkpoints" / "30").is_dir() and not partial.exists()
  for a, b in zip(jax.tree.leaves(load_run(str(run_dir), devices=1).state.params),
                  jax.tree.leaves(load_run(str(tmp_path / "ref"), devices=1).state.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # Continued exactly from step 22.
  assert [r["step"] for r in read_jsonl(str(run_dir / "metrics.jsonl"))] == \
      [r["step"] for r in read_jsonl(str(tmp_path / "ref" / "metrics.jsonl"))]
  # None intact: one line, nothing moved.
  for meta in glob.glob(str(hopeless / "checkpoints" / "*" / "default" / "_METADATA")):
    os.remove(meta)
  before = digest_tree(hopeless)
  with pytest.raises(CheckpointError, match="no checkpoint in .* can be read") as info:
    train_and_evaluate(make_cfg(QUIET + steps + ["trainer.max_steps=40", "trainer.resume=true"]), str(hopeless))
  assert "\n" not in str(info.value) and "does not fit" not in str(info.value)
  assert digest_tree(hopeless) == before
