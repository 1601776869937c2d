"""Regression tests for the bugs of issue 9, written against public behaviour."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from ae_research import train_and_evaluate
from ae_research.errors import ConfigError, Interrupted, UserError
from ae_research.run_dir import load_run
from ae_research.writers.jsonl import JsonlWriter, read_jsonl

from ae_research.population.runs import train_runs

SPE = 1438 // 64  # digits, batch 64: 22 steps per epoch.
QUIET = ["evaluation.enabled=false", "trainer.figures=false"]


def _params(run_dir):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(load_run(str(run_dir), devices=1).state.params))]


def test_bug1_eval_values_only_where_computed(make_cfg, tmp_path):
  train_and_evaluate(make_cfg(QUIET + ["trainer.epochs=4", "trainer.eval_every_epochs=2"]), str(tmp_path))
  records = read_jsonl(tmp_path / "metrics.jsonl")
  assert [r["step"] for r in records if "eval/loss" in r] == [2 * SPE, 4 * SPE]
  assert [r["step"] for r in records if "time/epoch_s" in r] == [SPE, 2 * SPE, 3 * SPE, 4 * SPE]


def test_bug2_failed_members_are_never_checkpointed(make_cfg, tmp_path):
  """Every member's loss is NaN before the first evaluation: no member may leave a NaN checkpoint."""
  cfgs = [make_cfg(QUIET + ["optimizer=sgd", "optimizer.learning_rate=1e12", f"seed={i}", "trainer.epochs=4",
                            "trainer.eval_every_epochs=3", "trainer.checkpoint_min_interval_s=0"]) for i in range(2)]
  results = train_runs(cfgs, [str(tmp_path / str(i)) for i in range(2)])
  assert all(isinstance(r, UserError) and "training loss became" in str(r) for r in results), results
  for i in range(2):
    ckpts = tmp_path / str(i) / "checkpoints"
    assert not ckpts.exists() or not [d for d in os.listdir(ckpts) if d.isdigit()]


def test_bug3_a_bad_member_is_its_own_result(make_cfg, tmp_path):
  sparse = QUIET + ["loss=sparse_kl", "model.code_activation=sigmoid", "model.output_activation=sigmoid",
                    "dataset.scale=unit", "trainer.max_steps=10"]
  cfgs = [make_cfg(sparse + [f"seed={i}", f"loss.terms.sparsity.rho={rho}"]) for i, rho in enumerate((0.1, 1.5, 0.2))]
  results = train_runs(cfgs, [str(tmp_path / str(i)) for i in range(3)])
  assert isinstance(results[1], ConfigError) and "rho=1.5" in str(results[1])
  assert results[0]["step"] == 10 and results[2]["step"] == 10 and results[0]["population/size"] == 2


POP = ["dataset=digits", "dataset.batch_size=64", "trainer.epochs=1000", "trainer.max_steps=150",
       "trainer.eval_batch_size=null", "trainer.checkpoint_min_interval_s=0", "trainer.log_every_steps=5",
       "logger.progress=false", "logger.wandb.mode=disabled", "evaluation.enabled=false", "trainer.figures=false"]


def _population(sweep_dir, *extra):
  return subprocess.Popen([sys.executable, "-m", "ae_research.train", "-m", "population=on", "seed=0,1", *POP, *extra,
                           f"hydra.sweep.dir={sweep_dir}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_bug4_sigterm_stops_a_population_which_resumes_exactly(tmp_path):
  ref = _population(tmp_path / "ref")
  assert ref.wait(timeout=300) == 0, ref.communicate()[1][-2000:]
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


def test_bug5_batch_level_terms_ignore_eval_padding(make_cfg, tmp_path):
  """360 test digits: one eval batch of 360 (no padding) and one of 400 (40 padded rows) agree."""
  sparse = QUIET + ["loss=sparse_kl", "model.code_activation=sigmoid", "model.output_activation=sigmoid",
                    "dataset.scale=unit", "trainer.max_steps=10"]
  exact = train_and_evaluate(make_cfg(sparse + ["trainer.eval_batch_size=360"]), str(tmp_path / "exact"))
  padded = train_and_evaluate(make_cfg(sparse + ["trainer.eval_batch_size=400"]), str(tmp_path / "padded"))
  assert padded["eval/sparsity"] == pytest.approx(exact["eval/sparsity"], rel=1e-5)
  assert padded["eval/loss"] == pytest.approx(exact["eval/loss"], rel=1e-5)


def test_bug6_compare_headline_shows_the_iwae_nll(tmp_path):
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


def test_bug7_init_from_takes_parameters_only(make_cfg, tmp_path):
  train_and_evaluate(make_cfg(QUIET + ["trainer.max_steps=10"]), str(tmp_path / "adam"))
  train_and_evaluate(make_cfg(QUIET + ["trainer.epochs=0", "optimizer=sgd", f"trainer.init_from={tmp_path / 'adam'}"]),
                     str(tmp_path / "sgd"))
  for a, b in zip(_params(tmp_path / "sgd"), _params(tmp_path / "adam")):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(UserError, match=r"do not fit this model \(.*encoder"):
    train_and_evaluate(make_cfg(QUIET + ["model.hidden=[16]", f"trainer.init_from={tmp_path / 'adam'}"]),
                       str(tmp_path / "other"))


def test_bug8_sigterm_in_an_epochs_last_chunk_keeps_its_evaluation(make_cfg, tmp_path, monkeypatch):
  overrides = QUIET + ["trainer.epochs=2", "trainer.checkpoint_min_interval_s=0"]
  train_and_evaluate(make_cfg(overrides), str(tmp_path / "ref"))
  write = JsonlWriter.write_scalars

  def write_and_signal(self, step, scalars):
    write(self, step, scalars)
    if step == 20 and "time/epoch_s" not in scalars:  # The chunk before epoch 1's last (22 steps, chunks of 5).
      os.kill(os.getpid(), signal.SIGTERM)

  monkeypatch.setattr(JsonlWriter, "write_scalars", write_and_signal)
  with pytest.raises(Interrupted):
    train_and_evaluate(make_cfg(overrides), str(tmp_path / "run"))
  monkeypatch.setattr(JsonlWriter, "write_scalars", write)
  train_and_evaluate(make_cfg(overrides + ["trainer.resume=true"]), str(tmp_path / "run"))
  evals = lambda d: [(r["step"], r["eval/loss"]) for r in read_jsonl(d / "metrics.jsonl") if "eval/loss" in r]
  assert evals(tmp_path / "run") == evals(tmp_path / "ref") and len(evals(tmp_path / "ref")) == 2


class _FakeClock:
  """A monotonic clock that advances 100 s whenever an epoch record is written."""
  now = 0.0

  @classmethod
  def monotonic(cls):
    return cls.now


def test_bug9_population_checkpoint_throttle_survives_member_0_failing(make_cfg, tmp_path, monkeypatch):
  import ae_research  # pylint: disable=g-import-not-at-top
  for name in ("ae_research.checkpoint", "ae_research.training.actions"):
    try:
      module = __import__(name, fromlist=["time"])
    except ImportError:
      continue
    if hasattr(module, "time"):
      monkeypatch.setattr(module, "time", _FakeClock)
  _FakeClock.now = 0.0
  write = JsonlWriter.write_scalars

  def write_and_tick(self, step, scalars):
    write(self, step, scalars)
    if "time/epoch_s" in scalars and self.path.endswith(os.path.join("1", "metrics.jsonl")):
      _FakeClock.now += 100.0

  monkeypatch.setattr(JsonlWriter, "write_scalars", write_and_tick)
  common = QUIET + ["optimizer=sgd", "trainer.epochs=6", "trainer.checkpoint_min_interval_s=150",
                    "trainer.keep_checkpoints=10"]
  cfgs = [make_cfg(common + ["seed=0", "optimizer.learning_rate=1e12"]),
          make_cfg(common + ["seed=1", "optimizer.learning_rate=0.01"])]
  results = train_runs(cfgs, [str(tmp_path / str(i)) for i in range(2)])
  assert isinstance(results[0], UserError) and isinstance(results[1], dict), results
  saved = sorted(int(d) for d in os.listdir(tmp_path / "1" / "checkpoints") if d.isdigit())
  assert saved == [2 * SPE, 4 * SPE, 6 * SPE]
  del ae_research
