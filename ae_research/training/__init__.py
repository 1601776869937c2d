"""Training: one host loop for K >= 1 members (`loop.train`); a single run is
`train_and_evaluate(cfg, workdir)`, the function the CLI, the tests and notebooks call."""
import contextlib
from typing import Any, Dict

from omegaconf import DictConfig

from ae_research import distributed
from ae_research.errors import ConfigError
from ae_research.models.capabilities import Reconstructs, has
from ae_research.run_dir import lock, record

from ae_research.training.greedy import pretrain_layers
from ae_research.training.loop import train, train_one
from ae_research.training.members import checked_setup, start_runtime


def train_and_evaluate(cfg: DictConfig, workdir: str) -> Dict[str, Any]:
  """Trains the configured model, evaluating and checkpointing; returns the summary dict.

  With `trainer.greedy_epochs > 0` and a stacked model, the layers are first pre-trained
  one at a time (runs in `workdir/pretrain/layer_<k>`), and this run fine-tunes the stack;
  `workdir` is locked, and a resume's config checked, before the first stage.
  """
  start_runtime(cfg)
  s = checked_setup(cfg)  # Bad input fails here, before any run directory is touched.
  if cfg.trainer.greedy_epochs <= 0:
    return train_one(cfg, workdir, s)
  if not has(s.model, Reconstructs):
    raise ConfigError("trainer.greedy_epochs pre-trains an autoencoder's layers; a classifier (task=classify) "
                      "starts from trainer.init_from=<a pre-trained run>: set trainer.greedy_epochs=0")
  with contextlib.ExitStack() as held:
    if distributed.is_main_process():
      held.enter_context(lock.hold(workdir))
    if cfg.trainer.resume and record.has_checkpoint(workdir):
      record.check_resume(workdir, cfg)
    fine_tune = pretrain_layers(cfg, workdir, s.model)
    return train_one(fine_tune, workdir, s, requested=cfg)  # The record keeps the config as asked for.


__all__ = ["train_and_evaluate", "train", "train_one"]
