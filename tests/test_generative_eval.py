"""Evaluators of generative autoencoders: disentanglement on dSprites, sample quality on a feature network
the framework trains, code statistics, and their figures; what cannot run is a one-line error."""
import json

import jax
import numpy as np
import pytest

from ae_research import train_and_evaluate
from ae_research.errors import ConfigError
from ae_research.evaluation.features import feature_network
from ae_research.metrics.sample_quality import fid
from ae_research.training.setup import prepare_data
from ae_research.writers.jsonl import read_jsonl

pytestmark = pytest.mark.slow  # Whole training runs: `make test-quick` leaves them out.

VAE = ["model=vae", "model.hidden=[32]", "model.latent_dim=4", "loss=vae_bce", "dataset.scale=unit"]
SMALL_DISENT = ["evaluation.mig.num_samples=1000", "evaluation.modularity.num_samples=1000",
                "evaluation.dci.num_train=1000", "evaluation.dci.num_test=500", "evaluation.sap.num_train=1000",
                "evaluation.sap.num_test=500", "evaluation.factor_vae_score.num_train=200",
                "evaluation.factor_vae_score.num_eval=100", "evaluation.factor_vae_score.num_variance_estimate=1000",
                "evaluation.beta_vae_score.num_train=200", "evaluation.beta_vae_score.num_eval=100"]
DISENT = ("mig", "modularity", "dci", "sap", "factor_vae_score", "beta_vae_score")


def test_disentanglement_evaluators_on_dsprites(make_cfg, tmp_path):
  cfg = make_cfg(VAE + SMALL_DISENT + ["dataset=dsprites", "dataset.resolution=32", "dataset.num_test=500",
                                       "trainer.max_steps=20", "dataset.batch_size=64",
                                       f"evaluation.evaluators=[reconstruction,code_statistics,{','.join(DISENT)}]",
                                       "trainer.figures=true", "trainer.log_every_steps=5", "evaluation.every_steps=10",
                                       "evaluation.periodic=[mig,code_statistics]"])
  train_and_evaluate(cfg, str(tmp_path))
  # During training: the periodic evaluators' scalars at their step (the last step's are eval.json's).
  periodic = [r for r in read_jsonl(tmp_path / "metrics.jsonl") if "disent/mig" in r]
  assert [r["step"] for r in periodic] == [10] and 0.0 <= periodic[0]["disent/mig"] <= 1.0, periodic
  assert "codes/active_units" in periodic[0] and "disent/sap" not in periodic[0]
  ev = json.loads((tmp_path / "eval.json").read_text())
  keys = ["disent/mig", "disent/modularity", "disent/dci_disentanglement", "disent/dci_completeness",
          "disent/dci_informativeness", "disent/sap", "disent/factor_vae_score", "disent/beta_vae_score"]
  for key in keys:
    assert 0.0 <= ev[key] <= 1.0, key
  assert 0 <= ev["codes/active_units"] <= 4 and np.isfinite(ev["codes/gaussian_total_correlation"])
  assert (tmp_path / "figures" / "mutual_information.png").stat().st_size > 5_000


@pytest.mark.parametrize("evaluators, extra, message", [
    ("[mig]", [], "evaluation.evaluators: mig needs ground-truth factors; data set digits has none"),
    ("[reconstruction]", ["evaluation.every_steps=10", "evaluation.periodic=[mig]"],
     "evaluation.periodic: mig needs ground-truth factors; data set digits has none"),
    ("[sample_quality]", ["dataset=blocks", "dataset.num_train=640", "dataset.num_test=128"],
     "evaluation.evaluators: sample_quality needs class labels; data set blocks has none"),
    ("[sample_quality]", ["model=mlp", "loss=bce", "model.output_activation=sigmoid"], "evaluation.evaluators: sample_quality cannot run: samples its "
                                                    "prior; model MLPAutoencoder has none (use sampler=expost_gmm)"),
    ("[prior_samples]", ["model=mlp", "loss=bce", "model.output_activation=sigmoid"], "evaluation.evaluators: prior_samples needs a prior to sample; "
                                                   "model MLPAutoencoder has none"),
])
def test_what_a_model_or_data_set_cannot_give_is_a_config_error(make_cfg, tmp_path, evaluators, extra, message):
  with pytest.raises(ConfigError) as e:
    train_and_evaluate(make_cfg(VAE + extra + [f"evaluation.evaluators={evaluators}"]), str(tmp_path))
  assert str(e.value) == message


def test_the_feature_network_is_trained_once_per_data_set(make_cfg, tmp_path, monkeypatch):
  monkeypatch.setenv("AE_CACHE_DIR", str(tmp_path))
  data = prepare_data(make_cfg(["dataset.scale=unit"]))
  net = feature_network(data, epochs=3)
  assert net.accuracy > 0.8  # 8x8 digits are easy.
  assert len(list((tmp_path / "feature_nets").iterdir())) == 1
  again = feature_network(data, epochs=3)
  np.testing.assert_array_equal(net(data.test["image"][:5]), again(data.test["image"][:5]))
  test = net(data.test["image"])
  assert test.shape == (len(data.test["image"]), 128)
  assert float(fid(test, test)) == pytest.approx(0.0, abs=1e-2)
  assert float(fid(test, net(np.random.default_rng(0).uniform(size=data.test["image"].shape)))) > 10.0


def test_sample_quality_of_the_prior_the_expost_mixture_and_reconstructions(make_cfg, tmp_path):
  evaluators = "[reconstruction,sample_quality,sample_quality_gmm,reconstruction_quality,prior_samples,traversals," \
               "interpolations]"
  train_and_evaluate(make_cfg(VAE + ["trainer.max_steps=60", "trainer.figures=true",
                                     f"evaluation.evaluators={evaluators}", "evaluation.sample_quality.num_samples=300",
                                     "evaluation.sample_quality_gmm.num_samples=300",
                                     "evaluation.reconstruction_quality.num_samples=300"]), str(tmp_path))
  ev = json.loads((tmp_path / "eval.json").read_text())
  for prefix in ("samples", "samples_gmm", "recon"):
    assert ev[f"{prefix}/fid"] > 0 and 0 <= ev[f"{prefix}/precision"] <= 1 and 0 <= ev[f"{prefix}/coverage"] <= 1
    assert np.isfinite(ev[f"{prefix}/kid"])
  for name in ("samples", "samples_gmm", "traversals", "interpolations"):
    assert (tmp_path / "figures" / f"{name}.png").stat().st_size > 3_000, name


def test_expost_mixture_fits_and_samples_the_codes():
  from ae_research.metrics.expost import fit_gaussian_mixture  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  codes = np.concatenate([rng.normal(-4, 0.5, (500, 2)), rng.normal(4, 0.5, (500, 2))])
  mixture = fit_gaussian_mixture(codes, 2)
  samples = np.asarray(mixture.sample(jax.random.PRNGKey(0), 4000))
  assert abs(np.mean(samples[:, 0] > 0) - 0.5) < 0.05 and np.abs(np.abs(samples).mean() - 4) < 0.3
