"""Building a run from its config: checked settings, data, mesh, model, objective, optimiser.

Everything here happens before the run directory is touched, so a bad config fails with
one line and leaves any earlier outputs as they were.
"""
import dataclasses
import functools
import math
from typing import Any, Optional, Tuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh
from omegaconf import DictConfig, OmegaConf

from ae_research.config import build, validate_config
from ae_research.errors import ConfigError
from ae_research.models.base import Autoencoder, has_convolutions
from ae_research.models.classifier import Classifier
from ae_research.sharding import check_divisible, make_mesh
from ae_research.state import split_model
from ae_research.step import make_loss_fn

# Constructor arguments the engine supplies (derived from the data or the schedule).
SUPPLIED = {"model": ("input_shape", "rngs"), "optimizer": ("total_steps",)}
SCAN_UNROLL = ("auto", "rolled", "full")


@dataclasses.dataclass(frozen=True)
class Plan:
  """How many steps, and when the host looks at them (all in optimiser steps)."""
  batch_size: int
  eval_batch_size: int
  steps_per_epoch: int
  total_steps: int
  log_every_steps: int  # The longest compiled chunk: metrics reach the host once per chunk.
  eval_every_steps: int
  checkpoint_every_steps: int

  @property
  def sync_every_steps(self) -> int:
    """Steps between the points where evaluation or checkpointing may be due: chunks stop there."""
    return math.gcd(self.eval_every_steps, self.checkpoint_every_steps)

  @property
  def longest_chunk(self) -> int:
    """The most steps a chunk of this run can have (it ends at a log point, a sync point or the end)."""
    return max(1, min(self.log_every_steps, self.sync_every_steps, self.total_steps))

  def epoch_of(self, step: int) -> int:
    """The 1-based epoch that `step` (steps taken) lies in, or has just completed."""
    return -(-step // self.steps_per_epoch)


@dataclasses.dataclass
class Setup:
  """Everything a run builds from its config."""
  data: Any  # ArrayDataset
  mesh: Mesh
  plan: Plan
  model: Autoencoder  # As initialised (its parameters are `params`); read for its declared abilities.
  graphdef: nnx.GraphDef
  params: nnx.State
  objective: Any
  tx: Any
  corruption: Optional[Any] = None
  update_mask: Optional[Any] = None  # Bool pytree like params (False: frozen), or None.
  unroll: bool = False  # Compile loops unrolled (see TrainerConfig.scan_unroll).

  def loss_fn(self):
    return make_loss_fn(self.graphdef, self.objective, self.corruption)


TASKS = ("reconstruct", "classify")


@functools.lru_cache(maxsize=16)
def _model_init(model_yaml: str, task_yaml: str, input_shape: Tuple[int, ...], num_classes: int):
  """The model's constructor compiled as one program, seed traced: eager initialisation compiles every
  random op on its own (4.6 s for SPEC 1 vs 2.6 s, measured), and members that differ only in
  their seed share this program (also across runs, through the persistent compilation cache).
  With task=classify the autoencoder is wrapped in a `Classifier`."""
  node, task = OmegaConf.create(model_yaml), OmegaConf.create(task_yaml)

  def init(seed):
    rngs = nnx.Rngs(jax.random.key(seed))
    model = build(node, "model", input_shape=input_shape, rngs=rngs)
    if task.name == "classify":
      model = Classifier(model, num_classes, tuple(task.head_hidden), task.head_activation, task.freeze_encoder,
                         rngs=rngs)
    return model

  return nnx.jit(init)


def prepare_data(cfg: DictConfig):
  """The run's data set: built from `dataset`, with only `task.labelled` labelled examples if asked."""
  data = build(cfg.dataset, "dataset")
  task = cfg.task
  if task.name == "classify" and task.labelled is not None and task.labelled != data.num_train:
    data = data.labelled_subset(task.labelled, task.labelled_per_class, task.labelled_seed)
  return data


def check_trainer(t: DictConfig) -> None:
  for key in ("log_every_steps", "eval_every_epochs", "checkpoint_every_epochs", "keep_checkpoints"):
    if t[key] <= 0:
      raise ConfigError(f"trainer.{key}={t[key]}: must be a positive integer")
  for key in ("epochs", "greedy_epochs"):
    if t[key] < 0:
      raise ConfigError(f"trainer.{key}={t[key]}: must be >= 0 (0 with epochs: evaluate only)")
  if t.checkpoint_min_interval_s < 0:
    raise ConfigError(f"trainer.checkpoint_min_interval_s={t.checkpoint_min_interval_s}: must be >= 0")
  for key in ("max_steps", "devices", "eval_batch_size", "eval_every_steps", "checkpoint_every_steps"):
    if t[key] is not None and t[key] <= 0:
      raise ConfigError(f"trainer.{key}={t[key]}: must be a positive integer or null")
  if t.scan_unroll not in SCAN_UNROLL:
    raise ConfigError(f"trainer.scan_unroll={t.scan_unroll!r}: choose {', '.join(SCAN_UNROLL)}")


def make_plan(tcfg: DictConfig, data, eval_batch_size: int) -> Plan:
  steps_per_epoch = data.num_train // data.batch_size
  total_steps = steps_per_epoch * tcfg.epochs
  if tcfg.max_steps is not None:
    total_steps = min(total_steps, tcfg.max_steps)
  return Plan(data.batch_size, eval_batch_size, steps_per_epoch, total_steps, tcfg.log_every_steps,
              tcfg.eval_every_steps or tcfg.eval_every_epochs * steps_per_epoch,
              tcfg.checkpoint_every_steps or tcfg.checkpoint_every_epochs * steps_per_epoch)


def setup(cfg: DictConfig, devices: Any = None, data: Any = None, mesh: Optional[Mesh] = None) -> Setup:
  """Validates `cfg` and builds data (unless given), mesh (unless given), model, objective and optimiser."""
  validate_config(cfg, SUPPLIED)
  tcfg = cfg.trainer
  check_trainer(tcfg)
  if cfg.task.name not in TASKS:
    raise ConfigError(f"task.name={cfg.task.name!r}: choose one of {', '.join(TASKS)}")
  if cfg.task.name == "classify" and cfg.task.get("objective") is None:
    raise ConfigError("task.name=classify needs task.objective (use task=classify, conf/task/classify.yaml)")
  data = prepare_data(cfg) if data is None else data
  mesh = mesh or make_mesh(tcfg.devices if devices is None else devices)
  eval_batch_size = tcfg.eval_batch_size or data.batch_size
  check_divisible(data.batch_size, mesh)
  check_divisible(eval_batch_size, mesh, "trainer.eval_batch_size")
  plan = make_plan(tcfg, data, eval_batch_size)
  num_classes = data.num_classes if cfg.task.name == "classify" else 0
  model = _model_init(OmegaConf.to_yaml(cfg.model), OmegaConf.to_yaml(cfg.task), data.image_shape,
                      num_classes)(jnp.uint32(cfg.seed))
  objective = build(cfg.task.objective, "task.objective") if cfg.task.name == "classify" else build(cfg.loss, "loss")
  objective.reference_batch_size = data.batch_size
  tx = build(cfg.optimizer, "optimizer", total_steps=max(plan.total_steps, 1))
  corruption = build(cfg.corruption, "corruption") if cfg.get("corruption") else None
  graphdef, params = split_model(model)
  if model.stage == 0 and model.predicts == "reconstruction":  # A greedy stage reconstructs the layer below.
    out_shape = jax.eval_shape(lambda p, x: nnx.merge(graphdef, p)(x)[0], params,
                               jax.ShapeDtypeStruct((1, *data.image_shape), jnp.float32)).shape[1:]
    if tuple(out_shape) != data.target_shape:
      raise ConfigError(f"model output shape {tuple(out_shape)} does not match the {data.name} targets "
                        f"{data.target_shape}; fix the model config (e.g. model.output_shape)")
  _check_code_size(model, objective, corruption, data)
  unroll = tcfg.scan_unroll == "full" or (tcfg.scan_unroll == "auto" and jax.default_backend() == "cpu"
                                          and has_convolutions(model))
  return Setup(data, mesh, plan, model, graphdef, params, objective, tx, corruption, model.update_mask(params),
               unroll)


def _check_code_size(model: Autoencoder, objective, corruption, data) -> None:
  """A plain MLP autoencoder (reconstruction terms only, clean input reproduced) whose code is
  at least as large as its input can learn the identity; it needs a regulariser or corruption.
  (Conv codes are exempt: pooling bottlenecks are their regulariser, SPEC 5.)"""
  from ae_research.losses import BinaryCrossEntropy, SquaredError  # pylint: disable=g-import-not-at-top
  plain = all(isinstance(t, (SquaredError, BinaryCrossEntropy)) for t in objective.terms.values())
  if (not plain or corruption is not None or model.variational or model.stage or data.has_paired_targets
      or model.predicts != "reconstruction"):
    return
  code = jax.eval_shape(model.encode, jax.ShapeDtypeStruct((1, *data.image_shape), jnp.float32)).shape
  size = math.prod(data.image_shape)
  if len(code) == 2 and code[1] >= size:
    raise ConfigError(f"the code has {code[1]} units, not fewer than the {size} inputs: a plain autoencoder would "
                      "learn the identity; use a smaller model.latent_dim, or add a sparsity/contractive loss or a "
                      "corruption")
