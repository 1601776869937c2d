"""`ae-reproduce EXPERIMENT|all [--quick] [overrides...]`: train, evaluate, draw, and report.

Each experiment's report (`reports/EXPERIMENT/report.md`) embeds its figures, lists its
metrics, and sets every claim of the source next to the measured outcome.
"""
import argparse
import dataclasses
import datetime
import json
import os
import shutil
import sys
from typing import Callable, Dict, List, Optional

from ae_research.errors import UserError


@dataclasses.dataclass(frozen=True)
class Claim:
  text: str  # What the source claims.
  measured: str  # Format string over the metrics (summary + eval.json).
  holds: Optional[Callable[[Dict], bool]] = None  # None: reported, not testable from metrics alone.


CLAIMS: Dict[str, List[Claim]] = {
    "deep_ae_2d": [Claim("As a non-linear method it compresses better than PCA with the same number of components.",
                         "test MSE {test/mse:.4f} vs PCA ({codes/dim} components) {baseline/pca_mse:.4f}",
                         lambda m: m["test/mse"] < m["baseline/pca_mse"])],
    "dae_vincent2008": [Claim("Trained with masking noise, it reconstructs the clean input from a corrupted one.",
                              "PSNR of corrupted input {test/psnr_corrupted:.2f} dB -> denoised {test/psnr:.2f} dB",
                              lambda m: m["test/psnr"] > m["test/psnr_corrupted"])],
    "sparse_l1": [Claim("The L1 penalty on the code makes most code activations (near) zero.",
                        "{codes/frac_near_zero:.1%} of code values below 0.01 in magnitude; mean activation "
                        "{codes/mean_activation:.4f}", lambda m: m["codes/frac_near_zero"] > 0.5)],
    "contractive_rifai2011": [Claim("The contractive penalty keeps the encoder's Jacobian small (robust codes).",
                                    "mean Frobenius norm of the encoder Jacobian on the test set {test/jacobian_norm:.3f}")],
    "vae_blocks_2d": [Claim("The learnt 2-D manifold orders the blocks by their size (figure: manifold).",
                            "R^2 of block height predicted from the 2-D code by 10-NN regression "
                            "{codes/knn_r2_height:.3f}", lambda m: m["codes/knn_r2_height"] > 0.9)],
    "vae_mnist_2d": [Claim("The VAE's codes cluster by class without labels (figure: codes).",
                           "linear probe on 2-D codes {probe/linear_codes:.3f} (chance 0.1); IWAE NLL "
                           "{test/nll_iwae:.2f} nats, no worse than the ELBO's bound (ELBO {test/elbo:.2f})",
                           lambda m: m["probe/linear_codes"] > 0.5 and m["test/nll_iwae"] <= -m["test/elbo"])],
    "ae_retrieval": [Claim("Codes learnt without labels retrieve images of the same class (cosine distance).",
                           "precision@1/4/10 = {retrieval/precision@1:.3f}/{retrieval/precision@4:.3f}/"
                           "{retrieval/precision@10:.3f} (chance 0.1)", lambda m: m["retrieval/precision@10"] > 0.5),
                     Claim("Unsupervised codes are good features for a downstream classifier.",
                           "linear probe: 32-D codes {probe/linear_codes:.3f} vs 784 raw pixels {probe/linear_pixels:.3f}",
                           lambda m: m["probe/linear_codes"] > 0.7)],
    "sparse_kl_patches": [Claim("The KL penalty drives each hidden unit's mean activation to rho = 0.1.",
                                "mean hidden activation {codes/mean_activation:.4f}",
                                lambda m: abs(m["codes/mean_activation"] - 0.1) < 0.03),
                          Claim("On natural images the filters become localised, oriented edge detectors.",
                                "see figures/filters.png (a visual claim)")],
    "conv_masci2011": [Claim("Greedily pre-trained conv AE layers extract features useful for classification.",
                             "linear probe on codes {probe/linear_codes:.3f} vs raw pixels {probe/linear_pixels:.3f}; "
                             "test MSE {test/mse:.4f}", lambda m: m["probe/linear_codes"] > 0.7)],
    "conv_colorize": [Claim("A conv AE trained on grey -> colour pairs predicts colour.",
                            "test MSE to true colour {test/mse:.4f} vs grey copied to RGB {baseline/grey_as_colour_mse:.4f}",
                            lambda m: m["test/mse"] < m["baseline/grey_as_colour_mse"])],
}

# --quick: about a minute each on a 2-core CPU.
QUICK = {
    "deep_ae_2d": ["trainer.epochs=3"], "dae_vincent2008": ["trainer.epochs=3"], "sparse_l1": ["trainer.epochs=2"],
    "contractive_rifai2011": ["trainer.epochs=2"], "vae_blocks_2d": ["trainer.epochs=2"],
    "vae_mnist_2d": ["trainer.epochs=3"], "ae_retrieval": ["trainer.epochs=5"],
    "sparse_kl_patches": ["trainer.epochs=800"], "conv_colorize": ["trainer.epochs=3"],
    "conv_masci2011": ["trainer.greedy_epochs=1", "trainer.epochs=1", "trainer.max_steps=150"],
}
QUICK_EVAL = ["evaluation.iwae_samples=20", "evaluation.probe_max_train=3000", "evaluation.retrieval_queries=300"]


def _format(claim: Claim, metrics: Dict) -> List[str]:
  try:
    measured = claim.measured.format(**metrics).replace("{", "").replace("}", "")
  except (KeyError, ValueError) as e:
    return [claim.text, f"not measured ({e})", "n/a"]
  if claim.holds is None:
    return [claim.text, measured, "reported"]
  try:
    return [claim.text, measured, "holds" if claim.holds(metrics) else "does not hold"]
  except KeyError as e:
    return [claim.text, measured, f"n/a (missing {e})"]


def write_report(experiment: str, run_dir: str, report_dir: str, command: str) -> str:
  summary = json.load(open(os.path.join(run_dir, "summary.json")))
  metrics = {**summary, **json.load(open(os.path.join(run_dir, "eval.json")))}
  fig_dir = os.path.join(report_dir, "figures")
  shutil.rmtree(fig_dir, ignore_errors=True)
  shutil.copytree(os.path.join(run_dir, "figures"), fig_dir)
  lines = [f"# {experiment}", "", f"Command: `{command}`  ", f"Run directory: `{run_dir}`  ",
           f"Date: {datetime.date.today().isoformat()}", "", "## Claims of the source vs measured", "",
           "| claim | measured | verdict |", "|---|---|---|"]
  lines += ["| " + " | ".join(_format(c, metrics)) + " |" for c in CLAIMS.get(experiment, [])]
  lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
  lines += [f"| {k} | {v:.6g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in sorted(metrics.items())]
  lines += ["", "## Figures", ""]
  lines += [f"### {name[:-4]}\n\n![{name[:-4]}](figures/{name})\n" for name in sorted(os.listdir(fig_dir))]
  path = os.path.join(report_dir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path


def _experiment_description(experiment: str) -> List[str]:
  """The header comment of conf/experiment/EXPERIMENT.yaml (what the experiment is)."""
  from ae_research.config import CONFIG_DIR  # pylint: disable=g-import-not-at-top
  lines = []
  for line in open(os.path.join(CONFIG_DIR, "experiment", f"{experiment}.yaml")):
    if not line.startswith("#"):
      break
    if "@package" not in line:
      lines.append(line[1:].strip())
  return lines


def write_experiment_readme(experiment: str, run_dir: str, report_path: str, command: str,
                            experiments_root: str = "experiments") -> str:
  """experiments/EXPERIMENT/README.md: the command, the expected outcome (the source's claims)
  and what the last full run measured (rewritten by every full `ae-reproduce`)."""
  summary = json.load(open(os.path.join(run_dir, "summary.json")))
  metrics = {**summary, **json.load(open(os.path.join(run_dir, "eval.json")))}
  rel_report = os.path.relpath(report_path, os.path.join(experiments_root, experiment))
  figures = sorted(os.listdir(os.path.join(run_dir, "figures")))
  lines = [f"# {experiment}", "", *_experiment_description(experiment), "",
           f"Reproduce: `{command}` (or `ae-train experiment={experiment}`; `--quick` for a one-minute version).", "",
           "## Expected outcome (the source's claims)", ""]
  lines += [f"- {c.text}" for c in CLAIMS.get(experiment, [])]
  lines += ["", f"## Last measured ({datetime.date.today().isoformat()}, {summary.get('n_devices')} device(s), "
            f"{summary.get('epoch')} epochs / {summary.get('step')} steps, "
            f"{summary.get('time/total_s', 0) / 60:.1f} min)", "", "| claim | measured | verdict |", "|---|---|---|"]
  lines += ["| " + " | ".join(_format(c, metrics)) + " |" for c in CLAIMS.get(experiment, [])]
  lines += ["", f"Headline metrics: eval/loss {metrics.get('eval/loss', float('nan')):.5g}, test MSE "
            f"{metrics.get('test/mse', float('nan')):.5g}; every metric and figure: [report]({rel_report}).", "",
            "Figures: " + ", ".join(f"[{f[:-4]}]({os.path.join(os.path.dirname(rel_report), 'figures', f)})"
                                    for f in figures)]
  path = os.path.join(experiments_root, experiment, "README.md")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  return path


def reproduce(experiment: str, quick: bool = False, overrides=(), runs_root: str = "runs/reproduce",
              reports_root: str = "reports", experiments_root: Optional[str] = None) -> str:
  """Trains `experiment` (with --quick/extra overrides), evaluates, and writes its report; returns the report path."""
  from ae_research.config import compose_config  # pylint: disable=g-import-not-at-top
  from ae_research.training import train_and_evaluate  # pylint: disable=g-import-not-at-top
  cfg = compose_config([f"experiment={experiment}"] + ((QUICK.get(experiment, []) + QUICK_EVAL) if quick else [])
                       + list(overrides))
  run_dir = os.path.join(runs_root, experiment, datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))
  train_and_evaluate(cfg, run_dir)
  command = "ae-reproduce " + " ".join([experiment] + (["--quick"] if quick else []) + list(overrides))
  report = write_report(experiment, run_dir, os.path.join(reports_root, experiment), command)
  if experiments_root and not quick:
    write_experiment_readme(experiment, run_dir, report, command, experiments_root)
  return report


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="ae-reproduce", description=__doc__.splitlines()[0])
  parser.add_argument("experiment", help=f"one of: all, {', '.join(CLAIMS)}")
  parser.add_argument("--quick", action="store_true", help="a shortened run (about a minute each on CPU)")
  parser.add_argument("overrides", nargs="*", help="extra Hydra overrides, e.g. dataset=mnist")
  args = parser.parse_intermixed_args(argv)
  names = list(CLAIMS) if args.experiment == "all" else [args.experiment]
  unknown = [n for n in names if n not in CLAIMS]
  if unknown:
    print(f"error: unknown experiment {unknown[0]!r}; choose all or one of {', '.join(CLAIMS)}", file=sys.stderr)
    sys.exit(2)
  for name in names:
    try:
      print(f"report: {reproduce(name, args.quick, args.overrides, experiments_root='experiments')}")
    except UserError as e:
      print(f"error: {name}: {e}", file=sys.stderr)
      sys.exit(2)


if __name__ == "__main__":
  main()
