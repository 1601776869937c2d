"""Composing the project's Hydra config from Python (what `ae-train` does from the command line)."""
from pathlib import Path
from typing import Optional, Sequence

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from ae_research.config.schema import register_schemas

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def compose_config(overrides: Sequence[str] = (), return_hydra_config: bool = False,
                   config_dir: Optional[str] = None) -> DictConfig:
  """`conf/config.yaml` with `overrides` (Hydra syntax), schemas registered."""
  register_schemas()
  with initialize_config_dir(config_dir=config_dir or CONFIG_DIR, version_base="1.3"):
    return compose(config_name="config", overrides=list(overrides), return_hydra_config=return_hydra_config)
