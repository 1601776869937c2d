"""`ae-reproduce disentangle_dsprites`: the disentanglement claims of Higgins et al. 2017, Chen et al.
2018, Kim & Mnih 2018 and Locatello et al. 2019, measured on procedural dSprites.

Models (runs `<model>_s<seed>`): VAE (beta 1), beta-VAE (beta 4, 6, 16; 6 is beta-TCVAE's beta, the
comparison Chen et al. make), the annealed VAE (capacity), beta-TCVAE (beta 6), FactorVAE (gamma 10, 40),
DIP-VAE-I and -II. A model's seeds, and beta-VAE's betas, differ only in numbers: they train as one population.
"""
import os
import statistics
from typing import Dict, List, Mapping, Sequence, Tuple

from ae_research.reproduce import seeds as sd
from ae_research.reproduce.claims import Claim, Metrics, both

MODELS = {  # model label -> overrides after its experiment.
    "vae": ["experiment=beta_vae", "loss.weights.kl=1.0"],
    "beta_vae_b4": ["experiment=beta_vae", "loss.weights.kl=4.0"],
    "beta_vae_b6": ["experiment=beta_vae", "loss.weights.kl=6.0"],
    "beta_vae_b16": ["experiment=beta_vae", "loss.weights.kl=16.0"],
    "annealed_vae": ["experiment=annealed_vae"],
    "beta_tcvae_b6": ["experiment=beta_tcvae", "loss.weights.tc=6.0"],
    "factor_vae_g10": ["experiment=factor_vae", "loss.weights.tc=10.0"],
    "factor_vae_g40": ["experiment=factor_vae", "loss.weights.tc=40.0"],
    "dip_vae_i": ["experiment=dip_vae_i"],
    "dip_vae_ii": ["experiment=dip_vae_ii"],  # Not in the list; Locatello et al. compare both DIP-VAEs.
}
SEEDS, QUICK_SEEDS = (0, 1, 2), (0, 1)
SUPERVISED = ("disent/mig", "disent/dci_disentanglement", "disent/sap", "disent/factor_vae_score",
              "disent/beta_vae_score", "disent/modularity")
COLUMNS = (("test/bce", "recon. BCE/pixel"), ("disent/mig", "MIG"), ("disent/dci_disentanglement", "DCI D"),
           ("disent/dci_completeness", "DCI C"), ("disent/dci_informativeness", "DCI I"), ("disent/sap", "SAP"),
           ("disent/factor_vae_score", "FactorVAE score"), ("disent/beta_vae_score", "βVAE score"),
           ("disent/modularity", "modularity"), ("codes/active_units", "active units"))
EVALUATORS = "[reconstruction,code_statistics,mig,modularity,dci,sap,factor_vae_score,beta_vae_score,traversals]"
CPU_STEPS = 30000
# study.size: cpu fits 30 runs in 3 h on 2 cores (32x32, an MLP, a tenth of the papers' steps); paper is
# disentanglement_lib's (64x64, its conv net, 300,000 steps of 64, Adam 1e-4: the experiments' defaults).
SIZES = {
    "cpu": ["dataset=dsprites", "dataset.resolution=32", "model/backbone=mlp", "dataset.batch_size=64",
            "optimizer.learning_rate=5e-4", "trainer.epochs=1000", f"trainer.max_steps={CPU_STEPS}",
            f"trainer.eval_every_steps={CPU_STEPS}",
            f"trainer.checkpoint_every_steps={CPU_STEPS // 6}", "trainer.log_every_steps=500",
            f"evaluation.evaluators={EVALUATORS}", "trainer.figures=true"],
    "paper": ["dataset=dsprites", "dataset.resolution=64", "trainer.epochs=1000",
              f"evaluation.evaluators={EVALUATORS}", "trainer.figures=true"],
}
QUICK_STEPS = 300
# --quick: the models every claim names (each of the others is smoke-trained by tests/test_generative_parts.py).
QUICK_MODELS = ("vae", "beta_vae_b4", "beta_vae_b6", "beta_vae_b16", "beta_tcvae_b6", "factor_vae_g10")
QUICK = [f"trainer.max_steps={QUICK_STEPS}", f"trainer.eval_every_steps={QUICK_STEPS}",
         "evaluation.mig.num_samples=2000", "evaluation.modularity.num_samples=2000", "evaluation.dci.num_train=2000",
         "evaluation.dci.num_test=1000", "evaluation.sap.num_train=2000", "evaluation.sap.num_test=1000",
         "evaluation.factor_vae_score.num_train=500", "evaluation.factor_vae_score.num_eval=200",
         "evaluation.factor_vae_score.num_variance_estimate=2000", "evaluation.beta_vae_score.num_train=500",
         "evaluation.beta_vae_score.num_eval=200"]


def phases(quick: bool, size: str):
  seeds = QUICK_SEEDS if quick else SEEDS
  steps = QUICK_STEPS if quick else CPU_STEPS if size == "cpu" else None
  # The capacity ramps over the first third of training, as disentanglement_lib's 100,000 of 300,000 steps.
  extra = {"annealed_vae": [f"loss.terms.capacity.steps={steps // 3}"]} if steps else {}
  if size == "cpu":  # Kim & Mnih's 6 x 1000 discriminator costs 8 VAEs a step on a CPU; 3 x 256 fits the budget.
    extra.update({m: ["model.adversary.hidden=[256,256,256]"] for m in MODELS if m.startswith("factor_vae")})
  models = {m: MODELS[m] for m in QUICK_MODELS} if quick else MODELS
  return ({sd.run_label(model, s): [*overrides, *extra.get(model, []), f"seed={s}"]
           for model, overrides in models.items() for s in seeds},)


def _recon(row: Mapping[str, float]) -> float:
  return row["test/bce"]


def derive(metrics: Metrics) -> Dict:
  table = sd.per_model(metrics, [k for k, _ in COLUMNS])
  spread = {k: sd.seed_vs_model_spread(metrics, k) for k in SUPERVISED}
  names, matrix = sd.rank_correlations(metrics, SUPERVISED)
  pairs = [matrix[i][j] for i in range(len(names)) for j in range(i + 1, len(names))
           if "modularity" not in names[i] + names[j]]
  return {"table": table, "spread": spread, "rank_names": names, "rank_matrix": matrix,
          "median_rank_correlation": statistics.median(pairs) if pairs else float("nan")}


def _t(m: Metrics, model: str, key: str) -> float:
  return m["derived"]["table"][model][key]


def _higgins(m: Metrics) -> str:
  up = [_t(m, b, "disent/beta_vae_score") > _t(m, "vae", "disent/beta_vae_score") for b in ("beta_vae_b4", "beta_vae_b16")]
  cost = [_recon(m["derived"]["table"][b]) > _recon(m["derived"]["table"]["vae"]) for b in ("beta_vae_b4", "beta_vae_b16")]
  return both(all(up), all(cost))


def _pareto(m: Metrics) -> str:
  """FactorVAE against beta-VAE in the (reconstruction, FactorVAE score) plane: holds if some FactorVAE
  model dominates a beta-VAE model and none is dominated; mixed if none is dominated; else does not hold."""
  t = m["derived"]["table"]
  pts = {k: (_recon(t[k]), t[k]["disent/factor_vae_score"]) for k in t}
  def dominates(a, b):  # Lower reconstruction error and higher score, one strictly.
    return a[0] <= b[0] and a[1] >= b[1] and a != b
  factor = [k for k in pts if k.startswith("factor_vae")]
  beta = [k for k in pts if k.startswith("beta_vae") or k == "vae"]
  dominated = any(dominates(pts[b], pts[f]) for f in factor for b in beta)
  dominating = any(dominates(pts[f], pts[b]) for f in factor for b in beta)
  return "holds" if dominating and not dominated else "mixed" if not dominated else "does not hold"


def _points(m: Metrics, models: Sequence[str], key: str) -> str:
  t = m["derived"]["table"]
  return "; ".join(f"{k} {_recon(t[k]):.4f} / {t[k][key]:.3f}" for k in models if k in t)


def _locatello(m: Metrics) -> str:
  d = m["derived"]
  ratios = [s["ratio"] for s in d["spread"].values() if s]
  return both(statistics.median(ratios) >= 0.5, d["median_rank_correlation"] >= 0.5)


CLAIMS = [
    Claim("Higgins et al. 2017: beta > 1 raises the betaVAE score over beta = 1, at a cost in reconstruction "
          "(paper, dSprites 64x64, figure 6: beta-VAE (beta 4) 99.23% vs VAE 61.58%).",
          lambda m: (f"βVAE score VAE {sd.cell(m['derived']['table']['vae'], 'disent/beta_vae_score')}, β=4 "
                     f"{sd.cell(m['derived']['table']['beta_vae_b4'], 'disent/beta_vae_score')}, β=16 "
                     f"{sd.cell(m['derived']['table']['beta_vae_b16'], 'disent/beta_vae_score')}; reconstruction BCE "
                     f"{sd.cell(m['derived']['table']['vae'], 'test/bce', 4)} / "
                     f"{sd.cell(m['derived']['table']['beta_vae_b4'], 'test/bce', 4)} / "
                     f"{sd.cell(m['derived']['table']['beta_vae_b16'], 'test/bce', 4)}"), _higgins),
    Claim("Chen et al. 2018: beta-TCVAE reaches a higher MIG than beta-VAE at the same beta (paper, dSprites "
          "64x64, figure 6: beta-TCVAE above beta-VAE at every beta).",
          lambda m: (f"MIG β-TCVAE (β=6) {sd.cell(m['derived']['table']['beta_tcvae_b6'], 'disent/mig')} vs β-VAE (β=6) "
                     f"{sd.cell(m['derived']['table']['beta_vae_b6'], 'disent/mig')}"),
          lambda m: _t(m, "beta_tcvae_b6", "disent/mig") > _t(m, "beta_vae_b6", "disent/mig")),
    Claim("Kim & Mnih 2018: FactorVAE gives a better disentanglement/reconstruction trade-off than beta-VAE "
          "(paper, dSprites 64x64, figure 4: FactorVAE's points above and left of beta-VAE's).",
          lambda m: ("(reconstruction BCE / FactorVAE score, means over seeds) "
                     + _points(m, ["vae", "beta_vae_b4", "beta_vae_b6", "beta_vae_b16", "factor_vae_g10",
                                   "factor_vae_g40"], "disent/factor_vae_score")), _pareto),
    Claim("Locatello et al. 2019: the spread over random seeds is comparable to the spread between models, and "
          "the supervised metrics largely agree (rank correlations over all runs; paper figures 3 and 7: all "
          "but modularity strongly correlated on dSprites).",
          lambda m: ("seed std / between-model std: " + ", ".join(
              f"{k.split('/')[1]} {s['within']:.3f}/{s['between']:.3f}" for k, s in m["derived"]["spread"].items() if s)
              + f"; median Spearman between metrics (modularity left out) {m['derived']['median_rank_correlation']:.2f}"),
          _locatello),
]


def report(metrics: Metrics, run_dirs: Mapping[str, str], report_dir: str) -> Tuple[List[str], Dict[str, str]]:
  from ae_research.reproduce import study_figures  # pylint: disable=g-import-not-at-top
  d = metrics["derived"]
  lines = ["## Models (mean ± std over seeds)", "", *sd.markdown_table(d["table"], COLUMNS), "",
           "## Spread over seeds against spread between models (Locatello et al. 2019)", "",
           "| metric | mean std over seeds | std of model means | ratio |", "|---|---|---|---|"]
  lines += [f"| {k} | {s['within']:.4f} | {s['between']:.4f} | {s['ratio']:.2f} |" for k, s in d["spread"].items() if s]
  figures = {"rank_correlations": study_figures.heat_map(
                 d["rank_names"], d["rank_matrix"], os.path.join(report_dir, "figures", "rank_correlations.png"),
                 "Spearman rank correlation between metrics over all runs"),
             "reconstruction_vs_mig": study_figures.scatter_by_model(
                 metrics, "test/bce", "disent/mig", os.path.join(report_dir, "figures", "reconstruction_vs_mig.png"),
                 "reconstruction vs MIG, one point per run")}
  for model in d["table"]:
    best = sd.best_seed(metrics, model, "disent/mig")
    for figure in ("traversals", "mutual_information"):
      copied = study_figures.copy_run_figure(run_dirs, best, figure, report_dir)
      if copied:
        figures[f"{model}: {figure} (best seed by MIG, {best})"] = copied
  return lines, figures
