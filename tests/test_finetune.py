"""Pre-training then fine-tuning: classifiers from encoders, labelled subsets, init_from, populations."""
import jax
import numpy as np
import pytest

from ae_research import train_and_evaluate
from ae_research.errors import ConfigError
from ae_research.training.sharing import group_runs
from ae_research.population.runs import train_runs
from ae_research.training.saved import load_run
from ae_research.writers.jsonl import read_jsonl
from conftest import CONV_AS_LOOPS  # tests/ is on sys.path

pytestmark = pytest.mark.slow  # Whole training runs: `make test-quick` leaves them out.

AE = ["model.hidden=[32]", "model.latent_dim=16", "evaluation.enabled=false", "trainer.figures=false"]
CLASSIFY = AE + ["task=classify", "task.labelled=200", "trainer.epochs=6"]


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


@pytest.fixture(scope="module")
def autoencoder_run(tmp_path_factory):
  from conftest import compose_config  # pylint: disable=g-import-not-at-top
  run_dir = tmp_path_factory.mktemp("pretrained") / "ae"
  train_and_evaluate(compose_config(AE + ["trainer.epochs=2"]), str(run_dir))
  return run_dir


def test_labelled_subset_is_deterministic_and_balanced(make_cfg):
  from ae_research.training.setup import prepare_data  # pylint: disable=g-import-not-at-top
  first = prepare_data(make_cfg(["task=classify", "task.labelled=100"]))
  again = prepare_data(make_cfg(["task=classify", "task.labelled=100", "seed=7"]))  # The run's seed: same subset.
  other = prepare_data(make_cfg(["task=classify", "task.labelled=100", "task.labelled_seed=1"]))
  assert first.num_train == 100 and np.array_equal(first.train["image"], again.train["image"])
  assert not np.array_equal(first.train["image"], other.train["image"])
  assert np.bincount(first.train["label"], minlength=10).tolist() == [10] * 10
  assert first.num_test == 359 and first.batch_size == 64  # The test split is untouched.
  shuffled = prepare_data(make_cfg(["task=classify", "task.labelled=37", "task.labelled_per_class=false"]))
  assert shuffled.num_train == 37 and shuffled.batch_size == 37
  with pytest.raises(ConfigError, match="multiple of the 10 classes"):
    prepare_data(make_cfg(["task=classify", "task.labelled=55"]))
  with pytest.raises(ConfigError, match="choose 1..1438"):
    prepare_data(make_cfg(["task=classify", "task.labelled=5000"]))


def test_classifier_learns_and_logs_accuracy(make_cfg, tmp_path):
  summary = train_and_evaluate(make_cfg(CLASSIFY + ["evaluation.enabled=true", "trainer.epochs=30"]), str(tmp_path))
  records = read_jsonl(tmp_path / "metrics.jsonl")
  assert "train/accuracy" in records[0] and "train/ce" in records[0]
  assert summary["test/accuracy"] == pytest.approx(summary["eval/accuracy"])
  assert summary["test/accuracy"] > 0.5  # Chance is 0.1.
  assert summary["test/error"] == pytest.approx(1 - summary["test/accuracy"])
  assert records[-1]["train/loss"] < records[0]["train/loss"]


def test_init_from_an_autoencoder_loads_the_encoder_only(make_cfg, tmp_path, autoencoder_run):
  train_and_evaluate(make_cfg(CLASSIFY + ["trainer.epochs=0", f"trainer.init_from={autoencoder_run}"]),
                     str(tmp_path / "loaded"))
  loaded = load_run(str(tmp_path / "loaded"), devices=1).state.params
  ae = load_run(str(autoencoder_run), devices=1).state.params
  for a, b in zip(_leaves(loaded["autoencoder"]), _leaves(ae)):
    np.testing.assert_array_equal(a, b)
  fresh = load_run(str(tmp_path / "loaded"), devices=1).setup.params  # The head keeps its initialisation.
  for a, b in zip(_leaves(loaded["head"]), _leaves(fresh["head"])):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ConfigError, match="do not fit this model"):  # Another architecture: named mismatch.
    train_and_evaluate(make_cfg(CLASSIFY + ["model.latent_dim=8", f"trainer.init_from={autoencoder_run}"]),
                       str(tmp_path / "other"))


def test_frozen_encoder_trains_the_head_only(make_cfg, tmp_path, autoencoder_run):
  train_and_evaluate(make_cfg(CLASSIFY + ["task.freeze_encoder=true", f"trainer.init_from={autoencoder_run}"]),
                     str(tmp_path))
  params = load_run(str(tmp_path), devices=1).state.params
  for a, b in zip(_leaves(params["autoencoder"]), _leaves(load_run(str(autoencoder_run), devices=1).state.params)):
    np.testing.assert_array_equal(a, b)
  head = load_run(str(tmp_path), devices=1).setup.params["head"]
  assert not all(np.array_equal(a, b) for a, b in zip(_leaves(params["head"]), _leaves(head)))


def test_fine_tuning_resumes_exactly_and_agrees_across_devices(make_cfg, tmp_path, autoencoder_run):
  init = [f"trainer.init_from={autoencoder_run}", "trainer.checkpoint_min_interval_s=0"]
  train_and_evaluate(make_cfg(CLASSIFY + init), str(tmp_path / "full"))
  train_and_evaluate(make_cfg(CLASSIFY + init + ["trainer.epochs=3"]), str(tmp_path / "cut"))
  train_and_evaluate(make_cfg(CLASSIFY + init + ["trainer.resume=true"]), str(tmp_path / "cut"))
  for a, b in zip(_leaves(load_run(str(tmp_path / "full")).state.params),
                  _leaves(load_run(str(tmp_path / "cut")).state.params)):
    np.testing.assert_array_equal(a, b)
  train_and_evaluate(make_cfg(CLASSIFY + init + ["trainer.devices=1"]), str(tmp_path / "one"))
  for a, b in zip(_leaves(load_run(str(tmp_path / "full"), devices=1).state.params),
                  _leaves(load_run(str(tmp_path / "one"), devices=1).state.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_seeds_and_initialisations_fine_tune_as_one_population(make_cfg, tmp_path, autoencoder_run):
  cfgs = [make_cfg(CLASSIFY + [f"seed={seed}"] + init) for seed in (0, 1)
          for init in ([], [f"trainer.init_from={autoencoder_run}"])]
  assert group_runs(cfgs) == [[0, 1, 2, 3]]  # Where a member starts does not change the program.
  results = train_runs(cfgs, [str(tmp_path / str(i)) for i in range(4)])
  assert all(r["population/size"] == 4 for r in results)
  alone = train_and_evaluate(cfgs[3], str(tmp_path / "alone"))
  assert results[3]["eval/loss"] == pytest.approx(alone["eval/loss"], rel=1e-4)


@pytest.mark.parametrize("model", [
    ["model=vae", "model.hidden=[16]", "model.latent_dim=4", "loss=vae_bce"],
    ["model=conv", "model.channels=[4,8]", "loss=bce", CONV_AS_LOOPS],
    ["model=stacked_mlp", "model.sizes=[16,8]", "loss=bce"],
    ["model=stacked_conv", "model.sizes=[4,4]", "loss=half_mse", CONV_AS_LOOPS],
], ids=["vae", "conv", "stacked_mlp", "stacked_conv"])
def test_every_encoder_family_becomes_a_classifier(make_cfg, tmp_path, model):
  """The classifier's features are the autoencoder's code (the VAE's posterior mean); init_from copies
  the whole autoencoder in, and a few fine-tuning steps lower the cross-entropy."""
  short = model + ["dataset.scale=unit", "evaluation.enabled=false", "trainer.figures=false", "trainer.max_steps=8",
                   "trainer.greedy_epochs=0", "trainer.log_every_steps=4"]
  train_and_evaluate(make_cfg(short), str(tmp_path / "ae"))
  train_and_evaluate(make_cfg(short + ["task=classify", f"trainer.init_from={tmp_path / 'ae'}"]), str(tmp_path / "ft"))
  ae = load_run(str(tmp_path / "ae"), devices=1).state.params
  records = [r for r in read_jsonl(tmp_path / "ft" / "metrics.jsonl") if "train/ce" in r]
  assert "train/accuracy" in records[0] and records[-1]["train/ce"] < records[0]["train/ce"]
  tuned = load_run(str(tmp_path / "ft"), devices=1).state.params["autoencoder"]
  assert any(not np.array_equal(a, b) for a, b in zip(_leaves(tuned), _leaves(ae)))  # The encoder trained...
  # ...and started from the autoencoder: with no steps, the classifier's autoencoder is the trained one.
  train_and_evaluate(make_cfg(short + ["task=classify", "trainer.epochs=0", f"trainer.init_from={tmp_path / 'ae'}"]),
                     str(tmp_path / "loaded"))
  for a, b in zip(_leaves(load_run(str(tmp_path / "loaded"), devices=1).state.params["autoencoder"]), _leaves(ae)):
    np.testing.assert_array_equal(a, b)
