"""Metric writers: W&B, metrics.jsonl and a console progress bar behind one interface."""
import os
from typing import Any, Mapping

from ae_research.distributed import is_main_process
from ae_research.writers.base import MetricWriter, MultiWriter, NullWriter
from ae_research.writers.console import ConsoleWriter
from ae_research.writers.jsonl import JsonlWriter
from ae_research.writers.wandb_writer import WandbWriter, resolve_mode  # noqa: F401  (public)


def create_writer(logger_cfg: Any, workdir: str, config: Mapping[str, Any], total_steps: int,
                  initial_step: int, label: str = "") -> MetricWriter:
  """The writers the config asks for; only process 0 writes anything. `label` prefixes console lines."""
  if not is_main_process():
    return NullWriter()
  writers = [ConsoleWriter(total_steps, initial_step, enabled=logger_cfg.progress, label=label)]
  if logger_cfg.jsonl:
    writers.append(JsonlWriter(os.path.join(workdir, "metrics.jsonl")))
  wb = logger_cfg.wandb
  mode = resolve_mode(wb.mode)
  if mode != "disabled":
    writers.append(WandbWriter(workdir, config, mode=mode, project=wb.project, entity=wb.entity, group=wb.group,
                               tags=wb.tags, job_type=wb.job_type, name=wb.name))
  return MultiWriter(writers)


__all__ = ["MetricWriter", "MultiWriter", "NullWriter", "ConsoleWriter", "JsonlWriter", "WandbWriter", "resolve_mode",
           "create_writer"]
