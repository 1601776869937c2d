"""Population training: members in one program end where the same runs alone end."""
import json
import os

import numpy as np
import pytest

from ae_research import train_and_evaluate
from ae_research.errors import ConfigError, UserError
from ae_research.training.sharing import group_runs, numeric_leaves, with_values
from ae_research.population.runs import train_runs
from ae_research.training.saved import load_run
from ae_research.writers.jsonl import JsonlWriter
from conftest import QUIET  # tests/ is on sys.path

pytestmark = pytest.mark.slow  # Whole training runs: `make test-quick` leaves them out.

SPE = 1438 // 64  # digits, batch 64: 22 steps per epoch.
MEMBERS = [["seed=0", "optimizer.learning_rate=0.001"], ["seed=1", "optimizer.learning_rate=0.003"],
           ["seed=2", "optimizer.learning_rate=0.001"], ["seed=3", "optimizer.learning_rate=0.01"]]


def _params(run_dir):
  return load_run(str(run_dir), devices=1).state.params


@pytest.mark.parametrize("extra", [[], ["loss=sparse_kl", "model.code_activation=sigmoid", "model.output_activation=sigmoid",
                                        "dataset.scale=unit"]], ids=["mse", "sparse_kl"])
def test_population_members_match_standalone_runs(make_cfg, tmp_path, extra):
  common = ["trainer.max_steps=24", "evaluation.enabled=false"] + extra
  cfgs = [make_cfg(common + m) for m in MEMBERS]
  if extra:  # Also vary a loss weight and the sparsity target inside the one program.
    cfgs = [make_cfg(common + m + [f"loss.weights.sparsity={w}", f"loss.terms.sparsity.rho={r}"])
            for m, w, r in zip(MEMBERS, (0.1, 1.0, 3.0, 0.5), (0.05, 0.1, 0.05, 0.2))]
  assert group_runs(cfgs) == [[0, 1, 2, 3]]
  dirs = [tmp_path / "pop" / str(i) for i in range(4)]
  results = train_runs(cfgs, [str(d) for d in dirs])
  assert all(r["population/size"] == 4 for r in results), results
  for i in ((3,) if extra else (1, 3)):
    alone = train_and_evaluate(cfgs[i], str(tmp_path / f"alone{i}"))
    assert results[i]["eval/loss"] == pytest.approx(alone["eval/loss"], rel=1e-4)
    got, want = _params(dirs[i]), _params(tmp_path / f"alone{i}")
    for a, b in zip(jax_leaves(got), jax_leaves(want)):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    rows = [json.loads(line) for line in open(dirs[i] / "metrics.jsonl")]
    assert rows and all("train/loss" in r for r in rows if "epoch" in r)
  assert len({r["eval/loss"] for r in results}) == 4  # The members really differ.


def jax_leaves(tree):
  import jax  # pylint: disable=g-import-not-at-top
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_members_with_different_shapes_train_separately(make_cfg, tmp_path):
  short = ["trainer.max_steps=5", "evaluation.enabled=false"]
  cfgs = [make_cfg(short + ["seed=0"]), make_cfg(short + ["model.hidden=[16]"]), make_cfg(short + ["seed=1"])]
  assert group_runs(cfgs) == [[0, 2], [1]]
  results = train_runs(cfgs, [str(tmp_path / str(i)) for i in range(3)])
  assert [r.get("population/size") for r in results] == [2, None, 2]
  alone = [make_cfg(short + [f"seed={i}", "trainer.share_program=false"]) for i in range(2)]
  assert group_runs(alone) == [[0], [1]]  # Opted out (convolutions on XLA CPU).


def test_numeric_leaves_and_with_values():
  class Term:
    def __init__(self, rho):
      self.rho, self.name = rho, "kl"
  objs = [{"a": Term(0.1), "w": 1.0}, {"a": Term(0.2), "w": 1.0}]
  varying = numeric_leaves(objs, "terms")
  assert list(varying) == [(("key", "a"), ("attr", "rho"))]
  np.testing.assert_allclose(varying[(("key", "a"), ("attr", "rho"))], [0.1, 0.2])
  swapped = with_values(objs[0], {(("key", "a"), ("attr", "rho")): 7.0})
  assert swapped["a"].rho == 7.0 and objs[0]["a"].rho == 0.1 and swapped["w"] == 1.0


def test_failed_members_are_never_checkpointed(make_cfg, tmp_path):
  """Every member's loss is NaN before the first evaluation: no member may leave a NaN checkpoint."""
  cfgs = [make_cfg(QUIET + ["optimizer=sgd", "optimizer.learning_rate=1e12", f"seed={i}", "trainer.epochs=4",
                            "trainer.eval_every_epochs=3", "trainer.checkpoint_min_interval_s=0"]) for i in range(2)]
  results = train_runs(cfgs, [str(tmp_path / str(i)) for i in range(2)])
  assert all(isinstance(r, UserError) and "training loss became" in str(r) for r in results), results
  for i in range(2):
    ckpts = tmp_path / str(i) / "checkpoints"
    assert not ckpts.exists() or not [d for d in os.listdir(ckpts) if d.isdigit()]


def test_a_member_with_a_bad_value_is_its_own_result(make_cfg, tmp_path):
  sparse = QUIET + ["loss=sparse_kl", "model.code_activation=sigmoid", "model.output_activation=sigmoid",
                    "dataset.scale=unit", "trainer.max_steps=10"]
  cfgs = [make_cfg(sparse + [f"seed={i}", f"loss.terms.sparsity.rho={rho}"]) for i, rho in enumerate((0.1, 1.5, 0.2))]
  results = train_runs(cfgs, [str(tmp_path / str(i)) for i in range(3)])
  assert isinstance(results[1], ConfigError) and "rho=1.5" in str(results[1])
  assert results[0]["step"] == 10 and results[2]["step"] == 10 and results[0]["population/size"] == 2


class _FakeClock:
  """A monotonic clock that advances 100 s whenever an epoch record is written."""
  now = 0.0

  @classmethod
  def monotonic(cls):
    return cls.now


def test_checkpoint_throttle_survives_member_0_failing(make_cfg, tmp_path, monkeypatch):
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


def test_a_one_member_population_is_the_standalone_run(make_cfg, tmp_path):
  cfg = make_cfg(QUIET + ["trainer.max_steps=30", "seed=5"])
  (result,) = train_runs([cfg], [str(tmp_path / "population")])
  alone = train_and_evaluate(cfg, str(tmp_path / "alone"))
  assert result["eval/loss"] == alone["eval/loss"]
  for a, b in zip(jax_leaves(_params(tmp_path / "population")), jax_leaves(_params(tmp_path / "alone"))):
    np.testing.assert_array_equal(a, b)
