"""What `ae-reproduce` runs: one study per experiment, its runs and the claims it checks.

A study's runs start from `experiment=<name>` (or from the `experiment=` a run names itself, in a study
of several experiments), then `study.size`'s overrides, then their own; runs whose
configs differ only in numbers (seed, noise level, a loss weight, the initialisation) train
as one population. Each claim sets what the source says against the comparison it makes:
the contractive penalty against the same autoencoder without it, denoising against 0%
noise, pre-training against random initialisation.
"""
import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ae_research.reproduce import disentangle_study, generative_study, pretraining
from ae_research.reproduce.claims import Claim, Metrics, both

Phases = Sequence[Mapping[str, Sequence[str]]]


SIZES = ("cpu", "paper")
# The report hook: (metrics by run label with "derived", run directories by label, report directory) ->
# (markdown lines, {figure title: PNG path under the report's figures/}).
ReportHook = Callable[[Metrics, Mapping[str, str], str], Tuple[List[str], Dict[str, str]]]


@dataclasses.dataclass(frozen=True)
class Study:
  name: str  # conf/experiment/<name>.yaml, which every run starts from, unless `experiment` says otherwise.
  claims: Sequence[Claim]
  phases: Union[Phases, Callable[[bool, str], Phases]] = ({"main": ()},)  # Or a function of (quick, size).
  quick: Sequence[str] = ()  # --quick: about a minute per run on a 2-core CPU.
  derive: Optional[Callable[[Metrics], Dict[str, Any]]] = None  # Numbers across runs: the "derived" pseudo-run.
  report: Optional[ReportHook] = None
  figure_runs: Sequence[str] = ("main",)  # Whose figures the report shows.
  side_by_side: Sequence[str] = ()  # Runs whose first-layer filters the report shows next to each other.
  experiment: Optional[str] = ""  # "" : the study's name; None: each run's overrides name its experiment.
  sizes: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)  # study.size -> overrides.
  description: Sequence[str] = ()  # For experiments/<name>/README.md when no experiment of that name exists.

  def plan(self, quick: bool, size: str = "cpu") -> Phases:
    return self.phases(quick, size) if callable(self.phases) else self.phases

  def base(self, run_overrides: Sequence[str]) -> List[str]:
    """The experiment a run starts from, as an override (none when the run names its own)."""
    if self.experiment is None or any(o.startswith("experiment=") for o in run_overrides):
      return []
    return [f"experiment={self.experiment or self.name}"]


QUICK_EVAL = ("evaluation.likelihood.samples=20", "evaluation.likelihood.max_test=500",
              "evaluation.linear_probe.max_train=3000", "evaluation.knn.max_train=3000", "evaluation.retrieval.queries=300")

NOISE = {"noise_0": 0.0, "noise_25": 0.25, "noise_50": 0.5}


def _pretraining_mlp(quick: bool, size: str) -> Phases:
  del size
  sources = {pretraining.RANDOM: None, "plain": "ae_plain", "denoising": "ae_denoising",
             "contractive": "ae_contractive", "sparse": "ae_sparse"}
  counts, seeds, steps = ((100, 1000), (0,), 100) if quick else (pretraining.LABEL_COUNTS, pretraining.SEEDS, 3000)
  return ({"ae_plain": [], "ae_denoising": ["corruption=masking", "corruption.probability=0.25"],
           "ae_contractive": ["loss=contractive", "loss.weights.contractive=0.1"],
           "ae_sparse": ["loss=sparse_kl", "loss.terms.sse.reduction=sum", "loss.weights.sse=1.0",
                         "loss.terms.sparsity.rho=0.05", "loss.weights.sparsity=3.0", "loss.weights.weight_decay=0"]},
          pretraining.finetune_runs(sources, steps, batch_size=100, learning_rate=1e-3, counts=counts, seeds=seeds,
                                    extra=["trainer.log_every_steps=100"]))


def _pretraining_conv(quick: bool, size: str) -> Phases:
  del size
  # Full: 300 steps of 100 images and no 60,000-label row, as XLA CPU trains these convs at ~400 images/s
  # (18 fine-tuning runs ~25 min); on an accelerator pass pretraining.LABEL_COUNTS and more steps.
  counts, seeds, steps = ((100, 1000), (0,), 24) if quick else ((100, 1000, 10000), pretraining.SEEDS, 300)
  # Both arms warm the learning rate up: a fresh Adam's first steps would otherwise undo pre-training.
  return ({"ae_conv": []}, pretraining.finetune_runs({pretraining.RANDOM: None, "masci": "ae_conv"}, steps,
                                                     batch_size=100, learning_rate=1e-3, counts=counts, seeds=seeds,
                                                     extra=[f"optimizer.warmup_steps={steps // 10}"]))


MLP_METHODS = ("plain", "denoising", "contractive", "sparse")


def _pretraining_study(name: str, phases, quick, methods: Sequence[str], title: str, side_by_side=()) -> Study:
  return Study(name, phases=phases, quick=quick, figure_runs=(), side_by_side=side_by_side,
               derive=lambda m: pretraining.derive(m, methods),
               report=lambda m, _, r: pretraining.report(m["derived"], (pretraining.RANDOM, *methods),
                                                         pretraining.counts_derived(m["derived"]), r, title),
               claims=[pretraining.claim(methods)])


STUDIES: Dict[str, Study] = {s.name: s for s in [
    Study("deep_ae_2d", quick=["trainer.epochs=3"], claims=[
        Claim("As a non-linear method it compresses better than PCA with the same number of components.",
              "test MSE {main[test/mse]:.4f} vs PCA ({main[codes/dim]} components) {main[baseline/pca_mse]:.4f}",
              lambda m: m["main"]["test/mse"] < m["main"]["baseline/pca_mse"]),
        Claim("Image denoising (seed figure b): noisy test images come back as clean-looking ones.",
              "PSNR to the clean image: noisy input {main[test/noisy_input_psnr]:.2f} dB -> reconstruction "
              "{main[test/noisy_reconstruction_psnr]:.2f} dB (reconstructing the clean input: {main[test/psnr]:.2f} dB)",
              lambda m: m["main"]["test/noisy_reconstruction_psnr"] > m["main"]["test/noisy_input_psnr"])]),
    Study("dae_vincent2008", quick=["trainer.epochs=3"],
          phases=({"main": [], **{k: [f"corruption.probability={p}"] for k, p in NOISE.items()}},),
          figure_runs=("main",), side_by_side=tuple(NOISE), claims=[
        Claim("Trained with masking noise, it reconstructs the clean input from a corrupted one.",
              "PSNR of corrupted input {main[test/psnr_corrupted]:.2f} dB -> denoised {main[test/psnr]:.2f} dB",
              lambda m: m["main"]["test/psnr"] > m["main"]["test/psnr_corrupted"]),
        Claim("Without noise many filters stay uninformative; with noise they become local stroke detectors "
              "(figure 2: 0%, 25%, 50% masking).",
              "noise-like filters (neighbour correlation < 0.2) at 0/25/50% noise: {noise_0[filters/frac_noise_like]:.0%} / "
              "{noise_25[filters/frac_noise_like]:.0%} / {noise_50[filters/frac_noise_like]:.0%}; mean filter "
              "smoothness {noise_0[filters/neighbour_correlation]:.2f} / {noise_25[filters/neighbour_correlation]:.2f} / "
              "{noise_50[filters/neighbour_correlation]:.2f}; units that barely moved from their initialisation (<10% "
              "of its norm) {noise_0[filters/frac_unmoved]:.0%} / {noise_25[filters/frac_unmoved]:.0%} / "
              "{noise_50[filters/frac_unmoved]:.0%}",
              lambda m: both(m["noise_0"]["filters/frac_noise_like"] > m["noise_50"]["filters/frac_noise_like"] + 0.05,
                             m["noise_50"]["filters/neighbour_correlation"]
                             > m["noise_0"]["filters/neighbour_correlation"] + 0.05)),
        Claim("Denoising pre-training gives better features for classification than none.",
              "linear probe on the 500-unit codes at 0/25/50% noise: {noise_0[probe/linear_codes]:.3f} / "
              "{noise_25[probe/linear_codes]:.3f} / {noise_50[probe/linear_codes]:.3f} (raw pixels "
              "{noise_0[probe/linear_pixels]:.3f})",
              lambda m: both(m["noise_25"]["probe/linear_codes"] > m["noise_0"]["probe/linear_codes"],
                             m["noise_50"]["probe/linear_codes"] > m["noise_0"]["probe/linear_codes"]))]),
    Study("sparse_kl_patches", quick=["trainer.epochs=200"], claims=[
        Claim("The KL sparsity penalty drives each unit's mean activation to the target rho = 0.1.",
              "mean code activation {main[codes/mean_activation]:.4f} (target 0.1)",
              lambda m: abs(m["main"]["codes/mean_activation"] - 0.1) < 0.01),
        Claim("With the seed's rho 0.1 and lambda 1e-5 the filters become localised, oriented edge detectors "
              "(UFLDL figure).",
              "filter structure (mean neighbour-pixel correlation; white noise ~0, smooth edges >= 0.5) "
              "{main[filters/neighbour_correlation]:.2f}; code values below 0.01: {main[codes/frac_near_zero]:.1%} "
              "(a dense code); test MSE {main[test/mse]:.5f}, i.e. a near-identity map. UFLDL's own rho 0.01 and "
              "lambda 1e-4 do give edges: see sparse_kl_ufldl",
              lambda m: m["main"]["filters/neighbour_correlation"] >= 0.5)]),
    Study("sparse_kl_ufldl", quick=["trainer.epochs=60"],
          phases=({"main": [], "seed_values": ["loss.terms.sparsity.rho=0.1", "loss.weights.weight_decay=1e-5"],
                   "adam": ["optimizer=adam", "optimizer.learning_rate=0.01", "trainer.epochs=4000",
                            "trainer.eval_every_epochs=1000", "trainer.log_every_steps=500",
                            "trainer.checkpoint_every_epochs=1000"]},),
          figure_runs=("main",), side_by_side=("main", "seed_values", "adam"), claims=[
        Claim("With UFLDL's settings (rho 0.01, lambda 1e-4, beta 3, L-BFGS 400 iterations, 10,000 whitened 8x8 "
              "patches) the filters are localised, oriented edge detectors.",
              "filter structure (mean neighbour-pixel correlation; white noise ~0, smooth edges >= 0.5) "
              "{main[filters/neighbour_correlation]:.2f}; mean activation {main[codes/mean_activation]:.4f} "
              "(target 0.01); {main[codes/frac_near_zero]:.1%} of code values below 0.01; test MSE "
              "{main[test/mse]:.4f}",
              lambda m: m["main"]["filters/neighbour_correlation"] >= 0.5
              and abs(m["main"]["codes/mean_activation"] - 0.01) < 0.002),
        Claim("The sparsity target and weight decay are what make edges: the seed's rho 0.1 and lambda 1e-5, "
              "same data and optimiser, learn a dense near-identity code with noise-like filters.",
              "structure {seed_values[filters/neighbour_correlation]:.2f} vs UFLDL's {main[filters/neighbour_correlation]:.2f}; "
              "code values below 0.01 {seed_values[codes/frac_near_zero]:.1%} vs {main[codes/frac_near_zero]:.1%}; "
              "test MSE {seed_values[test/mse]:.5f} vs {main[test/mse]:.5f}",
              lambda m: m["seed_values"]["filters/neighbour_correlation"] < m["main"]["filters/neighbour_correlation"]
              - 0.2),
        Claim("L-BFGS (UFLDL's minFunc) matters: full-batch Adam (lr 0.01, 4,000 steps) with the same loss "
              "does not reach the same solution.",
              "structure Adam {adam[filters/neighbour_correlation]:.2f} vs L-BFGS {main[filters/neighbour_correlation]:.2f}; "
              "test MSE {adam[test/mse]:.4f} vs {main[test/mse]:.4f}; train loss {adam[train/loss]:.4f} vs "
              "{main[train/loss]:.4f}",
              lambda m: m["main"]["train/loss"] < m["adam"]["train/loss"])]),
    Study("sparse_l1", quick=["trainer.epochs=2"], phases=({"main": [], "plain": ["loss.weights.l1=0"]},),
          figure_runs=("main",), side_by_side=("main", "plain"), claims=[
        Claim("The L1 penalty on the code makes most code activations (near) zero, where the same "
              "overcomplete autoencoder without it does not.",
              "code values below 0.01 in magnitude: {main[codes/frac_near_zero]:.1%} with L1 vs "
              "{plain[codes/frac_near_zero]:.1%} without; mean activation {main[codes/mean_activation]:.4f} vs "
              "{plain[codes/mean_activation]:.4f}; test BCE {main[test/bce]:.4f} vs {plain[test/bce]:.4f}",
              lambda m: m["main"]["codes/frac_near_zero"] > 0.5
              and m["main"]["codes/frac_near_zero"] > m["plain"]["codes/frac_near_zero"] + 0.2)]),
    Study("contractive_rifai2011", quick=["trainer.epochs=2"],
          phases=({"main": [], "plain": ["loss.weights.contractive=0"]},), figure_runs=("main", "plain"),
          derive=lambda m: {"jacobian_ratio": m["main"]["test/jacobian_norm"] / m["plain"]["test/jacobian_norm"],
                            "bce_ratio": m["main"]["test/bce"] / m["plain"]["test/bce"]},
          claims=[
        Claim("The contractive penalty keeps the encoder's Jacobian small (Rifai et al. 2011), compared with the "
              "same autoencoder without it, at a comparable reconstruction error.",
              "mean ‖J_f(x)‖_F on test images: CAE {main[test/jacobian_norm]:.3f} vs plain AE "
              "{plain[test/jacobian_norm]:.3f} ({derived[jacobian_ratio]:.2f}x); test BCE per pixel "
              "{main[test/bce]:.4f} vs {plain[test/bce]:.4f} ({derived[bce_ratio]:.2f}x)",
              lambda m: m["derived"]["jacobian_ratio"] < 0.8 and m["derived"]["bce_ratio"] < 1.25),
        Claim("Contractive codes are better features for a classifier than the plain autoencoder's.",
              "linear probe on the 500-unit codes: CAE {main[probe/linear_codes]:.3f} vs plain AE "
              "{plain[probe/linear_codes]:.3f} (raw pixels {main[probe/linear_pixels]:.3f})",
              lambda m: m["main"]["probe/linear_codes"] > m["plain"]["probe/linear_codes"])]),
    Study("vae_blocks_2d", quick=["trainer.epochs=2"], claims=[
        Claim("The learnt 2-D manifold orders the blocks by their size (figure: manifold).",
              "R^2 of block height predicted from the 2-D code by 10-NN regression {main[codes/knn_r2_height]:.3f}",
              lambda m: m["main"]["codes/knn_r2_height"] > 0.9)]),
    Study("vae_mnist_2d", quick=["trainer.epochs=3"], claims=[
        Claim("The VAE's codes cluster by class without labels (figure: codes).",
              "linear probe on 2-D codes {main[probe/linear_codes]:.3f} (chance 0.1)",
              lambda m: m["main"]["probe/linear_codes"] > 0.5),
        Claim("The importance-weighted bound is tighter than the ELBO (Burda et al. 2016).",
              lambda m: f"IWAE NLL bound {m['main']['test/nll_iwae']:.2f} +- {m['main']['test/nll_iwae_stderr']:.2f} "
                        f"nats vs the ELBO's bound -ELBO = {-m['main']['test/elbo_iwae_examples']:.2f} nats on the same "
                        f"{m['main']['test/nll_iwae_examples']} test images (lower is tighter)",
              lambda m: m["main"]["test/nll_iwae"] <= -m["main"]["test/elbo_iwae_examples"])]),
    Study("ae_retrieval", quick=["trainer.epochs=5"], claims=[
        Claim("Codes learnt without labels retrieve images of the same class (cosine distance).",
              "precision@1/4/10 = {main[retrieval/precision@1]:.3f}/{main[retrieval/precision@4]:.3f}/"
              "{main[retrieval/precision@10]:.3f} (chance 0.1)", lambda m: m["main"]["retrieval/precision@10"] > 0.5),
        Claim("Unsupervised codes are good features for a downstream classifier: 32 numbers keep what a "
              "linear classifier gets from all 784 pixels.",
              "linear probe: 32-D codes {main[probe/linear_codes]:.3f} vs 784 raw pixels {main[probe/linear_pixels]:.3f} "
              "(within 2 points holds)",
              lambda m: m["main"]["probe/linear_codes"] >= m["main"]["probe/linear_pixels"] - 0.02)]),
    Study("conv_masci2011", quick=["trainer.greedy_epochs=1", "trainer.epochs=1", "trainer.max_steps=150"], claims=[
        Claim("Greedily pre-trained conv AE layers extract features useful for classification.",
              "linear probe on codes {main[probe/linear_codes]:.3f} vs raw pixels {main[probe/linear_pixels]:.3f}; "
              "test MSE {main[test/mse]:.4f}", lambda m: m["main"]["probe/linear_codes"] > m["main"]["probe/linear_pixels"])]),
    Study("conv_colorize", quick=["trainer.epochs=3"], claims=[
        Claim("A conv AE trained on grey -> colour pairs predicts colour.",
              "test MSE to true colour {main[test/mse]:.4f} vs grey copied to RGB {main[baseline/grey_as_colour_mse]:.4f}",
              lambda m: m["main"]["test/mse"] < m["main"]["baseline/grey_as_colour_mse"])]),
    _pretraining_study("pretraining_mlp", _pretraining_mlp, ["trainer.epochs=2"], MLP_METHODS,
                       "MLP 784-500: pre-trained vs random initialisation",
                       side_by_side=("ae_plain", "ae_denoising", "ae_contractive", "ae_sparse")),
    _pretraining_study("pretraining_conv", _pretraining_conv, ["trainer.greedy_epochs=1", "trainer.max_steps=24"],
                       ("masci",),
                       "CNN from a stacked conv AE (Masci et al.) vs random initialisation"),
    Study("disentangle_dsprites", experiment=None, phases=disentangle_study.phases, sizes=disentangle_study.SIZES,
          quick=disentangle_study.QUICK, derive=disentangle_study.derive, report=disentangle_study.report,
          figure_runs=(), claims=disentangle_study.CLAIMS, description=disentangle_study.__doc__.splitlines()),
    Study("generative_fashion_mnist", experiment=None, phases=generative_study.phases, sizes=generative_study.SIZES,
          quick=generative_study.QUICK, derive=generative_study.derive, report=generative_study.report,
          figure_runs=(), claims=generative_study.CLAIMS, description=generative_study.__doc__.splitlines()),
]}
