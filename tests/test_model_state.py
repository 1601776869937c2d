"""Model state and parameter groups: an EMA codebook updated in the step, a second optimiser for part
of the parameters, both checkpointed and resumed exactly (kill -9), in populations too."""
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from ae_research import train_and_evaluate
from ae_research.errors import ConfigError
from ae_research.models.quantiser import VectorQuantiser, ema_update
from ae_research.population.runs import train_runs
from ae_research.training.saved import load_run
from ae_research.writers.jsonl import read_jsonl
from conftest import QUIET  # tests/ is on sys.path

pytestmark = pytest.mark.slow  # Whole training runs: `make test-quick` leaves them out.

VQ = ["model=vq_mlp", "model.hidden=[32]", "model.num_codes=16", "loss=vq_bce", "dataset.scale=unit",
      "+param_groups.decoder.params=decoder", "+param_groups.decoder.optimizer._target_=ae_research.optim.make_optimizer",
      "+param_groups.decoder.optimizer.name=adam", "+param_groups.decoder.optimizer.learning_rate=3e-3"]


def test_ema_codebook_update_matches_numpy():
  rng = np.random.default_rng(0)
  k, d, n, decay, eps = 6, 3, 20, 0.9, 1e-5
  count, total, z = rng.uniform(0.5, 2, k), rng.normal(size=(k, d)), rng.normal(size=(n, d))
  onehot = np.eye(k)[rng.integers(0, k, n)]
  want_count = decay * count + (1 - decay) * onehot.sum(0)
  want_total = decay * total + (1 - decay) * onehot.T @ z
  smoothed = (want_count + eps) / (want_count.sum() + k * eps) * want_count.sum()
  got = jax.jit(ema_update, static_argnums=(4, 5))(*map(jnp.asarray, (count, total, z, onehot)), decay, eps)
  for g, w in zip(got, (want_count, want_total, want_total / smoothed[:, None])):
    np.testing.assert_allclose(g, w, rtol=1e-5)


def test_quantiser_snaps_to_the_nearest_entry_and_passes_gradients_straight_through():
  vq = VectorQuantiser(num_codes=8, dim=2, rngs=nnx.Rngs(0))
  z = jax.random.normal(jax.random.PRNGKey(1), (5, 3, 2))
  z_q, aux = vq(z)
  codebook = np.asarray(vq.codebook[...])
  nearest = np.argmin(((np.asarray(z)[..., None, :] - codebook) ** 2).sum(-1), axis=-1)
  np.testing.assert_array_equal(aux["indices"], nearest)
  np.testing.assert_allclose(z_q, codebook[nearest], rtol=1e-6)
  grad = jax.grad(lambda z: jnp.sum(vq(z)[0] * 3.0))(z)
  np.testing.assert_allclose(grad, 3.0 * np.ones_like(z))  # d z_q / d z_e = I (straight through).
  before = np.asarray(vq.count[...]).copy()
  vq(z, train=False)
  np.testing.assert_array_equal(vq.count[...], before)  # Evaluation leaves the state alone...
  vq(z, train=True)
  assert not np.array_equal(vq.count[...], before)  # ...training moves it.


def test_a_parameter_group_trains_with_its_own_optimiser(make_cfg, tmp_path):
  frozen = [o.replace("learning_rate=3e-3", "learning_rate=1e-12") for o in VQ]
  train_and_evaluate(make_cfg(frozen + QUIET + ["trainer.max_steps=12"]), str(tmp_path / "run"))
  run = load_run(str(tmp_path / "run"), devices=1)
  start = run.setup.params
  for name in ("encoder", "decoder"):
    moved = max(float(np.abs(np.asarray(a) - np.asarray(b)).max())
                for a, b in zip(jax.tree.leaves(run.state.params[name]), jax.tree.leaves(start[name])))
    assert (moved > 1e-4) == (name == "encoder"), (name, moved)
  assert not np.array_equal(run.state.model_state["quantiser"]["count"][...],
                            run.setup.model_state["quantiser"]["count"][...])  # The EMA ran in the step.
  record = [r for r in read_jsonl(str(tmp_path / "run" / "metrics.jsonl")) if "train/learning_rate" in r][-1]
  assert record["train/learning_rate"] == pytest.approx(1e-3) and record["train/learning_rate/decoder"] < 1e-11
  with pytest.raises(ConfigError, match=r"param_groups.decoder.params='nothing' matches no parameter; the model's "
                                        r"parameters start with decoder, encoder"):
    train_and_evaluate(make_cfg([o.replace("params=decoder", "params=nothing") for o in VQ]), str(tmp_path / "bad"))


RUN = ["dataset=digits", "dataset.batch_size=64", "trainer.epochs=1000", "trainer.max_steps=200",
       "trainer.eval_batch_size=null", "trainer.checkpoint_min_interval_s=0", "trainer.log_every_steps=5",
       "logger.progress=false", "logger.wandb.mode=disabled", *QUIET, *VQ]


def _variables(run_dir):
  run = load_run(str(run_dir), devices=1)
  return [np.asarray(x) for x in jax.tree.leaves((run.state.params, run.state.model_state, run.state.opt_state))]


def _last_step(run_dir):
  path = os.path.join(run_dir, "metrics.jsonl")
  return max((r["step"] for r in read_jsonl(path)), default=0) if os.path.exists(path) else 0


@pytest.mark.slow
def test_kill_9_then_resume_is_exact_with_model_state_and_two_optimisers(make_cfg, tmp_path):
  train_and_evaluate(make_cfg(RUN, fast=False), str(tmp_path / "ref"))
  run_dir = tmp_path / "run"
  for trial, target in enumerate((30, 90)):
    proc = subprocess.Popen([sys.executable, "-m", "ae_research.train", *RUN, f"hydra.run.dir={run_dir}",
                             *(["trainer.resume=true"] if trial else [])], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while proc.poll() is None and _last_step(str(run_dir)) < target and time.time() - t0 < 180:
      time.sleep(0.03)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.kill()
    proc.communicate(timeout=60)
  assert _last_step(str(run_dir)) < 200
  train_and_evaluate(make_cfg(RUN + ["trainer.resume=true"], fast=False), str(run_dir))
  for a, b in zip(_variables(run_dir), _variables(tmp_path / "ref")):
    np.testing.assert_array_equal(a, b)


def test_a_population_carries_each_members_codebook_and_optimisers(make_cfg, tmp_path):
  cfgs = [make_cfg(VQ + QUIET + ["trainer.max_steps=15", f"seed={seed}", f"optimizer.learning_rate={lr}"])
          for seed, lr in ((0, 1e-3), (1, 3e-3))]
  results = train_runs(cfgs, [str(tmp_path / "pop" / str(i)) for i in range(2)])
  assert all(r["population/size"] == 2 for r in results)
  train_and_evaluate(cfgs[1], str(tmp_path / "alone"))
  for a, b in zip(_variables(tmp_path / "pop" / "1"), _variables(tmp_path / "alone")):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_codebook_perplexity_and_usage(make_cfg, tmp_path):
  from ae_research.evaluation.codebook import perplexity_and_usage  # pylint: disable=g-import-not-at-top
  assert perplexity_and_usage(np.arange(64) % 16, 16) == pytest.approx((16.0, 1.0))
  assert perplexity_and_usage(np.zeros(64, int), 16) == pytest.approx((1.0, 1 / 16))
  train_and_evaluate(make_cfg(VQ + ["trainer.max_steps=10", "trainer.figures=false",
                                    "evaluation.evaluators=[reconstruction,codebook]"]), str(tmp_path))
  ev = __import__("json").loads((tmp_path / "eval.json").read_text())
  assert 1.0 <= ev["codebook/perplexity"] <= 16 and 0 < ev["codebook/usage"] <= 1 and "test/mse" in ev
