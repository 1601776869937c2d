"""Structured-config schemas for the config groups whose keys the engine itself reads.

Registered in Hydra's ConfigStore and pulled into the YAML files through their defaults
lists, so a misspelt key or a value of the wrong type is rejected at composition time.
`model`, `loss` and `optimizer` nodes are checked against the signature of their
`_target_` instead (see `build.py`): the constructor is their schema.
"""
import dataclasses
import os
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf


@dataclasses.dataclass
class DistributedConfig:
  """Multi-process training (see ae_research/distributed.py)."""
  enabled: bool = False
  coordinator_address: Optional[str] = None  # host:port of process 0; null with the rest: from the environment.
  num_processes: Optional[int] = None
  process_id: Optional[int] = None
  cpu_collectives: Optional[str] = "gloo"  # CPU backend collectives between processes.
  timeout_s: int = 300


@dataclasses.dataclass
class TrainerConfig:
  epochs: int = 20  # 0: evaluate (and draw) the initial or restored model only.
  max_steps: Optional[int] = None  # Cap on total optimiser steps (stops mid-epoch).
  log_every_steps: int = 50  # Steps per compiled chunk; the host syncs once per chunk.
  # How chunks and eval loops are compiled: rolled (a while loop) or unrolled (chunks of at most 10
  # steps, dispatched back to back). "auto" unrolls on CPU when the model has convolutions: XLA CPU
  # runs them ~25x slower inside a while loop (measured).
  scan_unroll: str = "auto"  # auto | rolled | full
  eval_every_epochs: int = 1
  checkpoint_every_epochs: int = 1
  # In steps instead (when set): for data sets so small that an epoch is a step or two.
  eval_every_steps: Optional[int] = None
  checkpoint_every_steps: Optional[int] = None
  # ...but not sooner than this many seconds after the last one (the end of the run, SIGTERM and
  # SIGINT always checkpoint). Each orbax save costs ~5% of a 0.6-s SPEC 1 epoch on 2 CPU cores.
  checkpoint_min_interval_s: float = 30.0
  keep_checkpoints: int = 3
  resume: bool = False
  devices: Optional[int] = None  # Use the first N local devices (null: all).
  eval_batch_size: Optional[int] = None  # null: dataset.batch_size.
  figures: bool = True
  figure_examples: int = 10
  init_from: Optional[str] = None  # Run directory whose latest parameters initialise this run.
  greedy_epochs: int = 0  # Stacked models: epochs of greedy pre-training per layer before fine-tuning.
  # false: never train in a population with other runs of a multirun or study. For convolutions on XLA CPU:
  # vmapped over members they become grouped convolutions, measured ~5x slower than separate runs.
  share_program: bool = True
  # JAX's persistent compilation cache in $AE_CACHE_DIR/xla (or JAX_COMPILATION_CACHE_DIR): a repeated
  # run of the same config compiles nothing.
  compilation_cache: bool = True
  # XLA options for the run's own programs (training chunks, evaluation), e.g.
  # +trainer.compiler_options.xla_backend_optimization_level=2: per run, where XLA_FLAGS is per process.
  compiler_options: Dict[str, Any] = dataclasses.field(default_factory=dict)
  distributed: DistributedConfig = dataclasses.field(default_factory=DistributedConfig)


@dataclasses.dataclass
class WandbConfig:
  mode: str = "auto"  # auto (online with an API key, else offline) | online | offline | disabled
  project: str = "ae-research"
  entity: Optional[str] = None
  group: Optional[str] = None
  tags: List[str] = dataclasses.field(default_factory=list)
  job_type: str = "train"
  name: Optional[str] = None


@dataclasses.dataclass
class LoggerConfig:
  wandb: WandbConfig = dataclasses.field(default_factory=WandbConfig)
  jsonl: bool = True
  progress: bool = True  # tqdm progress bar on stderr.


@dataclasses.dataclass
class AugmentConfig:
  """Per-batch augmentation in the compiled training step (data/augment.py)."""
  crop_padding: int = 0  # Pad by this many pixels, crop back at a random offset (0: none).
  horizontal_flip: bool = False


@dataclasses.dataclass
class DatasetConfig:
  _target_: str = MISSING
  name: str = MISSING
  batch_size: int = 256
  scale: str = "unit"  # unit: pixels in [0, 1]; centered: [-0.5, 0.5].
  seed: int = 0
  # Read by the trainer, not the loader: keep the training split on the device (true), stream it from the
  # host (false), or decide by its size against the device's memory (auto).
  on_device: str = "auto"
  augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)


# Keys of `dataset` the trainer reads itself (not passed to the loader).
DATASET_ENGINE_KEYS = ("on_device", "augment")
ENGINE_KEYS = {"dataset": DATASET_ENGINE_KEYS}


@dataclasses.dataclass
class TfdsConfig(DatasetConfig):
  tfds_data_dir: Optional[str] = None
  download: bool = False  # Let TFDS download and prepare it (needs a network).
  train_split: str = "train"
  test_split: str = "test"


@dataclasses.dataclass
class DSpritesConfig(DatasetConfig):
  resolution: int = 64  # 64 (the original) or 32 (halved, for CPU work).
  path: Optional[str] = None  # The original dsprites_ndarray_*.npz, read instead of drawing the shapes.
  num_test: int = 10_000


@dataclasses.dataclass
class IdxDatasetConfig(DatasetConfig):
  data_dir: Optional[str] = None
  tfds_data_dir: Optional[str] = None
  download: bool = False  # Let TFDS download when no local copy exists.


@dataclasses.dataclass
class BlocksConfig(DatasetConfig):
  num_train: int = 80_000
  num_test: int = 20_000
  min_size: int = 5
  max_size: int = 22
  image_size: int = 28


@dataclasses.dataclass
class PhotoPatchesConfig(DatasetConfig):
  patch_size: int = 8
  num_train: int = 10_000
  num_test: int = 2_000
  grey: bool = True
  whiten: str = "olshausen"  # olshausen (whole photographs, as UFLDL's IMAGES.mat) | zca (patches) | none
  zca_epsilon: float = 0.01
  olshausen_f0: float = 0.4  # Cut-off of the whitening filter, cycles/pixel.
  downscale: int = 1  # Shrink the photographs by this factor first.
  paths: Optional[List[str]] = None


@dataclasses.dataclass
class PhotoColorizeConfig(DatasetConfig):
  size: int = 48
  num_train: int = 4_000
  num_test: int = 500
  downscale: int = 2
  paths: Optional[List[str]] = None


@dataclasses.dataclass
class TaskConfig:
  """What the model is trained to do: reconstruct its input, or classify (supervised fine-tuning)."""
  name: str = "reconstruct"  # reconstruct | classify
  objective: Any = None  # classify: the supervised objective (conf/task/classify.yaml); else `loss` is used
  head_hidden: List[int] = dataclasses.field(default_factory=list)  # classify: hidden widths of the head
  head_activation: str = "relu"
  freeze_encoder: bool = False  # classify: train the head only
  labelled: Optional[int] = None  # classify: train on this many labelled examples (null: all)
  labelled_per_class: bool = True  # ...an equal number of each class, else the first of one shuffle
  labelled_seed: int = 0  # Which examples: fixed, so every run with the same count sees the same ones.


@dataclasses.dataclass
class Config:
  """The composed run config. Groups without a schema are typed `Any`."""
  seed: int = 0
  model: Any = MISSING
  loss: Any = MISSING
  optimizer: Any = MISSING
  dataset: Any = MISSING
  corruption: Any = None  # Denoising: a corruption process applied to the inputs in the step.
  trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
  logger: LoggerConfig = dataclasses.field(default_factory=LoggerConfig)
  # Evaluators and their settings (conf/evaluation/default.yaml): a catalogue any evaluator can join, so
  # its keys are checked by `evaluation/base.py` rather than by a fixed schema.
  evaluation: Any = MISSING
  # name -> {params: regular expression matching parameter paths, optimizer: an optimizer node}: those
  # parameters train with their own optimiser in the same step (e.g. FactorVAE's discriminator).
  param_groups: Dict[str, Any] = dataclasses.field(default_factory=dict)
  task: TaskConfig = dataclasses.field(default_factory=TaskConfig)
  name: str = "run"  # Short run name (experiments set it); used for W&B and reports.
  objective_metric: str = "eval/loss"  # What the Hydra app returns (for sweepers such as optuna).


def _sweep_label(what: str, name: str = "") -> Optional[str]:
  """`${ae.sweep:group}`: the sweep's W&B group (its sweep directory's name) in a multirun,
  else null; `${ae.sweep:name,NAME}`: NAME plus the job's overrides in a multirun, else NAME."""
  from hydra.core.hydra_config import HydraConfig  # pylint: disable=g-import-not-at-top
  from hydra.types import RunMode  # pylint: disable=g-import-not-at-top
  if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
    return name or None
  hc = HydraConfig.get()
  if what == "group":
    return os.path.basename(os.path.normpath(hc.sweep.dir))
  return f"{name}[{hc.job.override_dirname}]" if hc.job.override_dirname else name


_registered = False


def register_schemas() -> None:
  """Stores the schemas in Hydra's ConfigStore (once per process: every `compose_config` calls this, and
  storing converts every dataclass again, 20 ms a time)."""
  global _registered
  if _registered:
    return
  if not OmegaConf.has_resolver("ae.sweep"):
    OmegaConf.register_new_resolver("ae.sweep", _sweep_label)
  cs = ConfigStore.instance()
  cs.store(name="config_schema", node=Config)
  cs.store(group="trainer", name="trainer_schema", node=TrainerConfig)
  cs.store(group="logger", name="logger_schema", node=LoggerConfig)
  cs.store(group="dataset", name="dataset_schema", node=DatasetConfig)
  cs.store(group="dataset", name="idx_schema", node=IdxDatasetConfig)
  cs.store(group="dataset", name="blocks_schema", node=BlocksConfig)
  cs.store(group="dataset", name="photo_patches_schema", node=PhotoPatchesConfig)
  cs.store(group="dataset", name="photo_colorize_schema", node=PhotoColorizeConfig)
  cs.store(group="dataset", name="tfds_schema", node=TfdsConfig)
  cs.store(group="dataset", name="dsprites_schema", node=DSpritesConfig)
  _registered = True
