"""A tqdm progress bar over optimiser steps, with one printed line per epoch."""
from typing import Mapping

import tqdm

from ae_research.writers.base import MetricWriter


class ConsoleWriter(MetricWriter):

  def __init__(self, total_steps: int, initial_step: int = 0, enabled: bool = True, label: str = ""):
    self._label = f"[{label}] " if label else ""
    self._bar = tqdm.tqdm(total=total_steps, initial=initial_step, unit="step", dynamic_ncols=True,
                          disable=not enabled, desc="train")

  def write_scalars(self, step, scalars: Mapping[str, float]):
    self._bar.update(int(step) - self._bar.n)
    if "eval/loss" in scalars:
      keys = ("train/loss", "eval/loss", "time/epoch_s", "train/samples_per_s")
      text = "  ".join(f"{k}={scalars[k]:.4g}" for k in keys if k in scalars)
      self._bar.write(f"{self._label}epoch {scalars.get('epoch')}: {text}")
    elif "train/loss" in scalars:
      self._bar.set_postfix(loss=f"{scalars['train/loss']:.4g}")

  def close(self):
    self._bar.close()
