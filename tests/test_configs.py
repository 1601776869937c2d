"""Every config composes, validates and builds; every experiment smoke-trains under `debug`."""
import json
import pathlib
import shutil

import numpy as np
import pytest
from flax import nnx

from ae_research import train_and_evaluate
from ae_research.config import build, validate_config
from ae_research.errors import ConfigError
from ae_research.training.setup import SUPPLIED
from ae_research.reproduce import STUDIES, reproduce
from omegaconf import OmegaConf
from ae_research.train import CONFIG_DIR
from ae_research.writers.jsonl import read_jsonl
from conftest import CONV_AS_LOOPS, CONV_OPTIMISED  # tests/ is on sys.path

CONF = pathlib.Path(CONFIG_DIR)


def _options(group):
  return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("group", ["model", "loss", "optimizer", "dataset", "logger", "trainer", "debug"])
def test_every_option_composes_and_validates(make_cfg, group):
  assert _options(group), f"conf/{group} is empty"
  for option in _options(group):
    cfg = make_cfg([f"{group}={option}"], fast=False)
    validate_config(cfg, SUPPLIED)


@pytest.mark.parametrize("option", _options("model"))
def test_every_model_builds(make_cfg, option):
  cfg = make_cfg([f"model={option}"], fast=False)
  model = build(cfg.model, "model", input_shape=(28, 28, 1), rngs=nnx.Rngs(0))
  assert hasattr(model, "encode") and hasattr(model, "decode")


@pytest.mark.parametrize("option", _options("optimizer"))
def test_every_optimizer_builds(make_cfg, option):
  cfg = make_cfg([f"optimizer={option}"], fast=False)
  assert build(cfg.optimizer, "optimizer", total_steps=10) is not None


@pytest.mark.parametrize("option", _options("loss"))
def test_every_loss_builds(make_cfg, option):
  assert build(make_cfg([f"loss={option}"], fast=False).loss, "loss").terms


def test_default_is_spec_section_1(make_cfg):
  cfg = make_cfg(fast=False)
  assert cfg.dataset.name == "fashion_mnist" and cfg.dataset.scale == "centered" and cfg.dataset.batch_size == 256
  assert list(cfg.model.hidden) == [128, 64, 10] and cfg.model.latent_dim == 2
  assert cfg.model.output_activation == "tanh" and list(cfg.loss.terms) == ["mse"]
  assert cfg.optimizer.name == "adam" and cfg.optimizer.learning_rate == 1e-3 and cfg.trainer.epochs == 20


@pytest.mark.parametrize("overrides, message", [
    (["+model.widht=3"], "model.widht: unknown key for ae_research.models.MLPAutoencoder; valid keys:"),
    (["model.latent_dim=two"], "model.latent_dim='two': expected int"),
    (["model.hidden=[8,x]"], "model.hidden=[8, 'x']: expected Sequence[int]"),
    (["+optimizer.momentun=0.9"], "optax.adam takes no momentun"),
    (["++trainer.compiler_options.xla_nonsense=1"], "trainer.compiler_options: No such compile option: 'xla_nonsense'"),
    (["++trainer.compiler_options.xla_backend_optimization_level=[2]"], "XLA options take a bool, number or string"),
])
def test_bad_target_keys_and_types_are_one_line_errors(make_cfg, tmp_path, overrides, message):
  with pytest.raises(ConfigError) as info:
    train_and_evaluate(make_cfg(overrides), str(tmp_path))
  assert message in str(info.value) and "\n" not in str(info.value)


# Each study on small data of its own kind (Fashion-MNIST ones on the 8x8 digits), the generative ones with a
# narrow backbone (what they test is the study, not the 512-256 MLP); conv chunks as loops.
SHRINK = {
    "vae_blocks_2d": ["dataset.num_train=2048", "dataset.num_test=512"],
    "sparse_kl_patches": ["dataset.num_train=2000", "dataset.num_test=400", "dataset.batch_size=400",
                          "trainer.eval_every_epochs=1"],
    "sparse_kl_ufldl": ["dataset.num_train=2000", "dataset.num_test=400", "dataset.batch_size=2000",
                        "trainer.eval_every_epochs=10"],
    "conv_colorize": ["dataset.num_train=592", "dataset.num_test=148", "dataset.size=16", "model.channels=[4,8,8]",
                      "model.output_shape=[16,16,3]", CONV_AS_LOOPS, CONV_OPTIMISED],
    "conv_masci2011": ["dataset=digits", "model.sizes=[8,8]", "trainer.greedy_epochs=1", CONV_AS_LOOPS,
                       CONV_OPTIMISED],
    "pretraining_conv": ["dataset=digits", "model.sizes=[8,8]", CONV_AS_LOOPS, CONV_OPTIMISED],
    "pretraining_mlp": ["dataset=digits", "model.latent_dim=32"],
    # The study's own log period (500 steps) would leave one record of 40 steps; the scores on fewer samples.
    "disentangle_dsprites": ["model.encoder.hidden=[64]", "dataset.num_test=500", "trainer.log_every_steps=10",
                             "evaluation.mig.num_samples=500", "evaluation.modularity.num_samples=500", "evaluation.dci.num_train=500",
                             "evaluation.dci.num_test=200", "evaluation.sap.num_train=500", "evaluation.sap.num_test=200",
                             "evaluation.factor_vae_score.num_train=100", "evaluation.factor_vae_score.num_eval=50",
                             "evaluation.factor_vae_score.num_variance_estimate=500",
                             "evaluation.beta_vae_score.num_train=100", "evaluation.beta_vae_score.num_eval=50",
                             "evaluation.traversals.dims=3", "evaluation.traversals.steps=5"],
    "generative_fashion_mnist": ["dataset=digits", "model.encoder.hidden=[64]", "trainer.log_every_steps=10",
                                 "evaluation.likelihood.samples=8", "evaluation.likelihood.max_test=200", "evaluation.sample_quality.num_samples=300",
                                 "evaluation.sample_quality_gmm.num_samples=300",
                                 "evaluation.sample_quality_gmm.max_train=500",
                                 "evaluation.reconstruction_quality.num_samples=300"],  # The study's own 32x32 dSprites.
}


def _experiments_of(study):
  """The experiments a study's runs start from: its own name, or the ones its runs name."""
  named = {o.split("=", 1)[1] for phase in study.plan(True) for run in phase.values() for o in run
           if o.startswith("experiment=")}
  return named | ({study.experiment or study.name} if study.experiment is not None else set())


def test_every_experiment_is_smoke_run():
  """By a study's --quick run below, or by test_generative_parts.py's smoke run of each generative experiment."""
  from test_generative_parts import GENERATIVE_EXPERIMENTS  # pylint: disable=g-import-not-at-top
  covered = set().union(*(_experiments_of(s) for s in STUDIES.values()), GENERATIVE_EXPERIMENTS)
  assert covered == set(_options("experiment"))


@pytest.mark.slow
@pytest.mark.parametrize("study", sorted(STUDIES))
def test_every_study_reproduces_in_ci_size(tmp_path, study):
  """`ae-reproduce --quick` end to end on small data: every run trains (falling loss, every term logged)
  and every claim of the report is measured against its comparison (no "not measured", no "n/a")."""
  overrides = ["debug=default", "trainer.epochs=1000", "trainer.max_steps=40", "logger.progress=false",
               "evaluation.likelihood.samples=10", "evaluation.linear_probe.max_train=500",
               "evaluation.knn.max_train=500", "evaluation.retrieval.queries=100"]
  report = reproduce(study, quick=True, overrides=overrides + SHRINK.get(study, ["dataset=digits"]),
                     runs_root=str(tmp_path / "runs"), reports_root=str(tmp_path / "reports"))
  (root,) = (tmp_path / "runs" / study).iterdir()
  runs = sorted(p for p in root.iterdir() if (p / "summary.json").exists())
  assert runs and len(runs) == sum(len(phase) for phase in STUDIES[study].plan(True))
  for run_dir in runs:
    cfg = OmegaConf.load(run_dir / "config.yaml")
    records = read_jsonl(run_dir / "metrics.jsonl")
    objective = cfg.task.objective if cfg.task.name == "classify" else cfg.loss
    terms = [k for k in records[0] if k.startswith("train/") and k.split("/")[1] in objective.terms]
    assert sorted(terms) == sorted(f"train/{t}" for t in objective.terms)  # Every term logged on its own.
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["step"] == 40 and np.isfinite(summary["eval/loss"]), run_dir
    assert records[-1]["train/loss"] < records[0]["train/loss"], (run_dir, records[0], records[-1])
  claims = json.loads((tmp_path / "reports" / study / "claims.json").read_text())["claims"]
  assert len(claims) == len(STUDIES[study].claims)
  for claim in claims:  # Measured, with a verdict: never "not measured" or "n/a".
    assert claim["verdict"] in ("holds", "does not hold", "mixed"), claim
  text = open(report).read()
  for label in STUDIES[study].figure_runs:
    assert f"![{label}/codes.png](figures/{label}/codes.png)" in text
    assert (tmp_path / "reports" / study / "figures" / label / "codes.png").exists()
  assert (tmp_path / "reports" / "index.md").exists()


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_experiment_deltas_override_the_primary_config(make_cfg, experiment):
  cfg = make_cfg([f"experiment={experiment}"], fast=False)
  assert cfg.name == experiment  # config.yaml's own `name` must not win over the experiment's.


def test_experiment_hyperparameters_match_the_spec(make_cfg):
  dae = make_cfg(["experiment=dae_vincent2008"], fast=False)
  assert (dae.model.latent_dim, dae.model.tied, dae.corruption.probability, dae.optimizer.name,
          dae.optimizer.learning_rate, dae.dataset.batch_size, dae.trainer.epochs) == (500, True, 0.3, "sgd", 0.02, 128, 100)
  vae = make_cfg(["experiment=vae_blocks_2d"], fast=False)
  assert vae.dataset.name == "blocks" and list(vae.model.hidden) == [512] and vae.model.latent_dim == 2
  sparse = make_cfg(["experiment=sparse_kl_patches"], fast=False)
  assert (sparse.loss.terms.sparsity.rho, sparse.loss.weights.sparsity, sparse.loss.weights.weight_decay) == (0.1, 3.0, 1e-5)
  colour = make_cfg(["experiment=conv_colorize"], fast=False)
  assert (colour.optimizer.name, colour.dataset.batch_size, list(colour.model.output_shape)) == ("rmsprop", 148, [48, 48, 3])


@pytest.mark.slow
def test_reproduce_resume_keeps_finished_runs_and_trains_the_rest(tmp_path):
  """`ae-reproduce STUDY --resume DIR`: finished runs are not trained again; a missing one is."""
  overrides = ["debug=default", "dataset=digits", "trainer.max_steps=10", "logger.progress=false",
               "evaluation.linear_probe.max_train=300", "evaluation.knn.max_train=300",
               "evaluation.retrieval.queries=50"]
  kw = dict(quick=True, overrides=overrides, runs_root=str(tmp_path / "runs"), reports_root=str(tmp_path / "reports"))
  reproduce("contractive_rifai2011", **kw)
  (root,) = (tmp_path / "runs" / "contractive_rifai2011").iterdir()
  kept = (root / "main" / "summary.json").stat().st_mtime_ns
  shutil.rmtree(root / "plain")
  reproduce("contractive_rifai2011", resume=str(root), **kw)
  assert (root / "main" / "summary.json").stat().st_mtime_ns == kept
  assert json.loads((root / "plain" / "summary.json").read_text())["step"] == 10
  assert [p.name for p in (tmp_path / "runs" / "contractive_rifai2011").iterdir()] == [root.name]
  with pytest.raises(ConfigError, match="no such directory"):
    reproduce("contractive_rifai2011", resume=str(tmp_path / "missing"), **kw)
