"""Greedy layer-wise pre-training of stacked autoencoders (Vincent et al. 2008; Masci et al. 2011).

Stage k trains layer k alone (`model.stage=k`: lower layers frozen, their codes the
target), starting from stage k-1's parameters; each stage is an ordinary run in
`workdir/pretrain/layer_<k>` with its own metrics.jsonl, summary.json and checkpoint.
A stage that finished under the same config is skipped, so re-running resumes; one that
finished under another config is refused (`run_dir.finished_summary`), never reused.
"""
import os

from omegaconf import DictConfig, OmegaConf

from ae_research import run_dir
from ae_research.errors import ConfigError
from ae_research.models.base import Autoencoder
from ae_research.models.capabilities import Stacked, require
from ae_research.training.loop import train_one


def pretrain_layers(cfg: DictConfig, workdir: str, model: Autoencoder) -> DictConfig:
  """Runs the stages; returns `cfg` set to fine-tune from the last stage's parameters."""
  require(model, Stacked, "trainer.greedy_epochs>0 (greedy layer-wise pre-training)")
  if model.stage != 0:
    raise ConfigError("trainer.greedy_epochs>0 needs the stacked model at stage 0 (model.stage=0)")
  previous = cfg.trainer.init_from
  for k in range(1, model.num_stacked_layers + 1):
    stage_dir = os.path.join(workdir, "pretrain", f"layer_{k}")
    stage = OmegaConf.merge(cfg, {"model": {"stage": k},
                                  "trainer": {"epochs": cfg.trainer.greedy_epochs, "greedy_epochs": 0,
                                              "init_from": previous, "figures": False,
                                              "resume": os.path.isdir(os.path.join(stage_dir, "checkpoints"))},
                                  "evaluation": {"enabled": False},  # Stages keep eval/* losses; no probes.
                                  "logger": {"wandb": {"job_type": f"pretrain_layer_{k}", "mode": "disabled"}}})
    if run_dir.finished_summary(stage_dir, stage) is None:
      train_one(stage, stage_dir)
    previous = stage_dir
  return OmegaConf.merge(cfg, {"trainer": {"init_from": previous, "greedy_epochs": 0}})
