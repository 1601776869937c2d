"""`ae-reproduce generative_fashion_mnist`: the sample-quality and likelihood claims of Burda et al. 2016
(IWAE), Tomczak & Welling 2018 (VampPrior), Tolstikhin et al. 2018 (WAE) and Ghosh et al. 2020 /
Chadebec et al. 2022 (ex-post density sampling), measured on Fashion-MNIST in pythae's benchmark form.

Every model has the same backbone (the MLP 784-512-256 / 256-512-784, ReLU; conf/model/backbone/mlp.yaml)
and a 16-D code; the AE is the WAE without its MMD term (same likelihood, a N(0, I) to sample from).
FIDs are on the features of the framework's own Fashion-MNIST classifier (evaluation/features.py), not
Inception's: compare them between rows, not with the papers' values.
"""
from typing import Dict, List, Mapping, Tuple

from ae_research.reproduce import seeds as sd
from ae_research.reproduce.claims import Claim, Metrics, both

PRIOR, GMM = "sample_quality", "sample_quality_gmm"
BASE = ["reconstruction", "code_statistics", GMM, "reconstruction_quality"]
STOCHASTIC = ["likelihood", PRIOR, *BASE]
CODE = ["model.latent.dim=16"]  # The same code size for every continuous latent (the VQ-VAE keeps its tokens).
MODELS = {  # model label -> (overrides after its experiment, evaluators).
    "ae": (["experiment=wae_mmd", *CODE, "loss.weights.mmd=0.0"], [PRIOR, *BASE]),
    "vae": (["experiment=beta_vae", *CODE, "loss.weights.kl=1.0"], STOCHASTIC),
    "beta_vae": (["experiment=beta_vae", *CODE, "loss.weights.kl=4.0"], STOCHASTIC),
    "iwae_k5": (["experiment=iwae", *CODE, "model.samples=5"], STOCHASTIC),
    "iwae_k50": (["experiment=iwae", *CODE, "model.samples=50"], STOCHASTIC),
    "wae_mmd": (["experiment=wae_mmd", *CODE], [PRIOR, *BASE]),
    "info_vae": (["experiment=info_vae", *CODE], STOCHASTIC),
    "rae": (["experiment=rae", *CODE], BASE),  # No prior: sampled ex post only (Ghosh et al.).
    # The VAE's objective exactly: the experiment's 60,000-step KL warm-up would leave β at 0.15 after 9,000 steps.
    "vamp_vae": (["experiment=vamp_vae", *CODE, "loss.warmup_steps.kl=0"], STOCHASTIC),
    "vq_vae": (["experiment=vq_vae"], ["reconstruction", "codebook", "reconstruction_quality"]),
}
SEEDS = (0, 1)
# --quick: one seed of the models the claims name (the others are smoke-trained by tests/test_generative_parts.py).
QUICK_MODELS = ("ae", "vae", "iwae_k5", "iwae_k50", "vamp_vae", "wae_mmd")
BACKBONE = ["model/backbone=mlp", "model.encoder.hidden=[512,256]", "model.encoder.activation=relu",
            "model.decoder.activation=relu"]
CPU_STEPS = 9000  # 15 epochs of 100: the 50-sample IWAE is a fifth of the study's 3 hours at that.
SIZES = {
    # cpu: 15 epochs, the likelihood on 2,000 test images with 500 importance samples.
    "cpu": [*BACKBONE, "dataset.batch_size=100", "optimizer.learning_rate=1e-3", "trainer.epochs=1000",
            f"trainer.max_steps={CPU_STEPS}", f"trainer.eval_every_steps={CPU_STEPS}",
            f"trainer.checkpoint_every_steps={CPU_STEPS // 3}", "trainer.log_every_steps=500",
            "evaluation.likelihood.samples=500", "trainer.figures=true"],
    # paper: pythae's benchmark length (100 epochs) and Burda et al.'s 5,000 importance samples on every test image.
    "paper": [*BACKBONE, "dataset.batch_size=100", "optimizer.learning_rate=1e-3", "trainer.epochs=100",
              "trainer.max_steps=null", "evaluation.likelihood.samples=5000", "evaluation.likelihood.max_test=null",
              "trainer.figures=true"],
}
QUICK = ["trainer.max_steps=300", "trainer.eval_every_steps=300", "evaluation.likelihood.samples=20",
         "evaluation.likelihood.max_test=500", "evaluation.sample_quality.num_samples=1000",
         "evaluation.sample_quality_gmm.num_samples=1000", "evaluation.sample_quality_gmm.max_train=2000",
         "evaluation.reconstruction_quality.num_samples=1000"]
COLUMNS = (("test/mse", "recon. MSE"), ("recon/fid", "recon. FID"), ("samples/fid", "FID prior"),
           ("samples_gmm/fid", "FID GMM"), ("samples/precision", "precision prior"), ("samples/recall", "recall prior"),
           ("samples_gmm/precision", "precision GMM"), ("samples_gmm/recall", "recall GMM"),
           ("test/nll_iwae", "IWAE NLL (nats)"), ("test/bits_per_dim", "bits/dim"), ("codes/active_units", "active units"),
           ("codebook/perplexity", "codebook perplexity"))


def phases(quick: bool, size: str):
  del size
  models = {m: MODELS[m] for m in QUICK_MODELS} if quick else MODELS
  return ({sd.run_label(model, s): [*overrides, f"evaluation.evaluators=[{','.join(evaluators)}]", f"seed={s}"]
           for model, (overrides, evaluators) in models.items() for s in (SEEDS[:1] if quick else SEEDS)},)


def derive(metrics: Metrics) -> Dict:
  return {"table": sd.per_model(metrics, [k for k, _ in COLUMNS])}


def _t(m: Metrics, model: str, key: str) -> float:
  return m["derived"]["table"][model][key]


def _c(m: Metrics, model: str, key: str, digits: int = 2) -> str:
  return sd.cell(m["derived"]["table"][model], key, digits)


LEARNED_PRIOR = ("vamp_vae",)  # Its prior is a mixture learnt with it, not N(0, I): outside the claim below.


def _gmm_lower(m: Metrics, models=None) -> List[Tuple[str, bool]]:
  t = m["derived"]["table"]
  models = [k for k in t if k not in LEARNED_PRIOR] if models is None else [k for k in models if k in t]
  return [(k, t[k]["samples_gmm/fid"] < t[k]["samples/fid"]) for k in models
          if "samples/fid" in t[k] and "samples_gmm/fid" in t[k]]


CLAIMS = [
    Claim("Burda et al. 2016: the IWAE objective gives a better test log-likelihood than the VAE's, and more active "
          "units (paper, MNIST, one stochastic layer, table 1: NLL VAE 86.76, IWAE k=5 85.54, k=50 84.78 nats; "
          "active units 19, 22, 25).",
          lambda m: (f"IWAE NLL VAE {_c(m, 'vae', 'test/nll_iwae')}, IWAE k=5 {_c(m, 'iwae_k5', 'test/nll_iwae')}, k=50 "
                     f"{_c(m, 'iwae_k50', 'test/nll_iwae')} nats; active units {_c(m, 'vae', 'codes/active_units', 1)}, "
                     f"{_c(m, 'iwae_k5', 'codes/active_units', 1)}, {_c(m, 'iwae_k50', 'codes/active_units', 1)} of 16"),
          lambda m: both(_t(m, "iwae_k50", "test/nll_iwae") < _t(m, "iwae_k5", "test/nll_iwae") < _t(m, "vae", "test/nll_iwae"),
                         _t(m, "iwae_k50", "codes/active_units") > _t(m, "vae", "codes/active_units"))),
    Claim("Tomczak & Welling 2018: the VampPrior improves the test log-likelihood over the standard prior "
          "(paper, MNIST, table 2, one layer: 88.56 -> 85.57 nats).",
          lambda m: (f"IWAE NLL VampPrior VAE {_c(m, 'vamp_vae', 'test/nll_iwae')} vs N(0, I) VAE "
                     f"{_c(m, 'vae', 'test/nll_iwae')} nats"),
          lambda m: _t(m, "vamp_vae", "test/nll_iwae") < _t(m, "vae", "test/nll_iwae")),
    Claim("Tolstikhin et al. 2018: WAE-MMD samples have a lower FID than the VAE's (paper, CelebA 64x64, table 1: "
          "VAE 63, WAE-MMD 55).",
          lambda m: f"FID of N(0, I) samples: WAE-MMD {_c(m, 'wae_mmd', 'samples/fid')} vs VAE {_c(m, 'vae', 'samples/fid')}",
          lambda m: _t(m, "wae_mmd", "samples/fid") < _t(m, "vae", "samples/fid")),
    Claim("Ghosh et al. 2020, Chadebec et al. 2022: sampling an ex-post Gaussian mixture lowers FID against the "
          "N(0, I) prior for every model, and a deterministic AE with that sampler is competitive with the VAEs.",
          lambda m: ("FID N(0, I) -> GMM: " + ", ".join(
              f"{k} {_t(m, k, 'samples/fid'):.1f} -> {_t(m, k, 'samples_gmm/fid'):.1f}" for k, _ in _gmm_lower(m))
              + f"; AE + GMM {_c(m, 'ae', 'samples_gmm/fid')} vs VAE + N(0, I) {_c(m, 'vae', 'samples/fid')}"
              + "".join(f"; not N(0, I), so outside the claim: {k}'s own learnt prior {_t(m, k, 'samples/fid'):.1f} "
                        f"-> GMM {_t(m, k, 'samples_gmm/fid'):.1f}" for k, _ in _gmm_lower(m, LEARNED_PRIOR))),
          lambda m: both(all(lower for _, lower in _gmm_lower(m)),
                         _t(m, "ae", "samples_gmm/fid") <= _t(m, "vae", "samples/fid"))),
]


def report(metrics: Metrics, run_dirs: Mapping[str, str], report_dir: str) -> Tuple[List[str], Dict[str, str]]:
  from ae_research.reproduce import study_figures  # pylint: disable=g-import-not-at-top
  table = metrics["derived"]["table"]
  lines = ["## Models (mean ± std over seeds; pythae's benchmark columns)", "",
           *sd.markdown_table(table, COLUMNS, digits=2), "",
           "FID, precision and recall: 10,000 samples (prior: the model's own, N(0, I) but for vamp_vae's "
           "VampPrior; GMM: a 10-component Gaussian mixture fitted to 10,000 training codes) against the test "
           "images on the features of the framework's Fashion-MNIST classifier (not Inception: the papers' FIDs "
           "are not on this scale).", "",
           "The figures' titles name the experiment a row's runs start from: the VAE row is `beta_vae` with "
           "β = 1, the AE row `wae_mmd` without its MMD term. The VampPrior row trains the VAE's objective (its "
           "experiment's 60,000-step KL warm-up is off: at 9,000 steps it would leave β at 0.15)."]
  figures = {}
  for model in table:
    label = sd.run_label(model, SEEDS[0])
    for figure in ("samples", "samples_gmm", "reconstructions"):
      copied = study_figures.copy_run_figure(run_dirs, label if label in run_dirs else None, figure, report_dir)
      if copied:
        figures[f"{model}: {figure} ({label})"] = copied
  return lines, figures
