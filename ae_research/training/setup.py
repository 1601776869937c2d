"""Building a run from its config: checked settings, data, mesh, model, objective, optimiser.

Everything here happens before the run directory is touched, so a bad config fails with
one line and leaves any earlier outputs as they were.
"""
import dataclasses
import functools
import math
from typing import Any, Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import Mesh
from omegaconf import DictConfig, OmegaConf

from ae_research.config import build, validate_config
from ae_research.config.schema import DATASET_ENGINE_KEYS
from ae_research.data.augment import Augment
from ae_research.data.storage import storage_bytes
from ae_research.errors import ConfigError
from ae_research.evaluation import base as evaluation
from ae_research.models.base import Model, has_convolutions
from ae_research.models.capabilities import Reconstructs, StochasticEncoder, has
from ae_research.models.classifier import Classifier
from ae_research.optim import with_param_groups
from ae_research.sharding import check_divisible, make_mesh
from ae_research.state import DEFAULT_GROUP, split_model
from ae_research.step import make_loss_fn
from ae_research.training.stream import fits_on_device

# Constructor arguments the engine supplies (derived from the data or the schedule).
SUPPLIED = {"model": ("input_shape", "rngs"), "optimizer": ("total_steps",), "param_groups": ("total_steps",)}
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
  model: Model  # As initialised (its variables are `params` and `model_state`); asked for its capabilities.
  graphdef: nnx.GraphDef
  params: nnx.State
  objective: Any
  tx: Any
  model_state: Any = None  # nnx.State of the model's non-parameter variables (empty for most models).
  corruption: Optional[Any] = None
  update_mask: Optional[Any] = None  # Bool pytree like params (False: frozen), or None.
  unroll: bool = False  # Compile loops unrolled (see TrainerConfig.scan_unroll).
  aux_shapes: Dict[str, Tuple[int, ...]] = dataclasses.field(default_factory=dict)  # The training call's aux arrays.
  evaluators: Sequence[Any] = ()  # What the end-of-run evaluation runs (evaluation/base.py).
  periodic_evaluators: Sequence[Any] = ()  # What runs every evaluation.every_steps during training.
  on_device: bool = True  # The training split lives on the device (else it streams from the host).
  augment: Optional[Any] = None  # data/augment.Augment applied to each training batch, or None.
  compiler_options: Tuple[Tuple[str, Any], ...] = ()  # trainer.compiler_options, sorted (a cache key).

  def loss_fn(self, train: bool = True):
    return make_loss_fn(self.graphdef, self.objective, self.corruption, train, self.data.num_train)

  @property
  def variables(self) -> nnx.State:
    """Parameters and model state in one state (what evaluation merges the model from)."""
    return nnx.merge_state(self.params, self.model_state)


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
  data = build(cfg.dataset, "dataset", engine_keys=DATASET_ENGINE_KEYS)
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


# Unrolled conv programs on XLA:CPU (see `unroll` in `setup`) get its memory-minimising scheduler unless the
# config names one: the conv AE's 10-step chunk held 1,249 MiB of temporaries under the default, 152 MiB
# under it, and trained at 1,580 vs 1,101 samples/s (peak RSS 1,474 vs 2,457 MiB; 2 alternating rounds,
# 2026-12-03). The MLP was not faster with it (75,304 vs 80,806 samples/s): other programs keep the default.
CONV_SCHEDULER = ("xla_cpu_scheduler_type", "CPU_SCHEDULER_TYPE_MEMORY_OPTIMIZED")


def compiler_options(tcfg: DictConfig, unrolled_convs: bool = False) -> Tuple[Tuple[str, Any], ...]:
  """trainer.compiler_options as sorted (name, value) pairs (with CONV_SCHEDULER's default for unrolled
  convolutions); a value that is not a scalar is a config error."""
  options = tcfg.get("compiler_options")
  options = OmegaConf.to_container(options, resolve=True) if options else {}
  if unrolled_convs:
    options.setdefault(*CONV_SCHEDULER)
  for name, value in options.items():
    if not isinstance(value, (bool, int, float, str)):
      raise ConfigError(f"trainer.compiler_options.{name}={value!r}: XLA options take a bool, number or string")
  pairs = tuple(sorted(options.items()))
  if pairs:
    _check_with_xla(pairs)
  return pairs


@functools.lru_cache(maxsize=16)
def _check_with_xla(options: Tuple[Tuple[str, Any], ...]) -> None:
  """XLA checks names and values when it compiles: here, once per set of options (not once per population
  member), on a one-op program, and not after set-up."""
  try:
    jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(jnp.float32(0)).compile()
  except jax.errors.JaxRuntimeError as e:
    raise ConfigError(f"trainer.compiler_options: {str(e).splitlines()[0].removeprefix('INVALID_ARGUMENT: ')}"
                      "; see XLA's DebugOptions for the names and types") from None


def make_plan(tcfg: DictConfig, data, eval_batch_size: int) -> Plan:
  steps_per_epoch = data.num_train // data.batch_size
  total_steps = steps_per_epoch * tcfg.epochs
  if tcfg.max_steps is not None:
    total_steps = min(total_steps, tcfg.max_steps)
  return Plan(data.batch_size, eval_batch_size, steps_per_epoch, total_steps, tcfg.log_every_steps,
              tcfg.eval_every_steps or tcfg.eval_every_epochs * steps_per_epoch,
              tcfg.checkpoint_every_steps or tcfg.checkpoint_every_epochs * steps_per_epoch)


def setup(cfg: DictConfig, devices: Any = None, data: Any = None, mesh: Optional[Mesh] = None) -> Setup:
  """Validates `cfg` and builds data (unless given), mesh (unless given), model, objective, optimiser and
  evaluators; checks that they fit each other (shapes, what the loss reads, what the evaluators need)."""
  validate_config(cfg, SUPPLIED)
  tcfg = cfg.trainer
  check_trainer(tcfg)
  if not 0 <= cfg.seed < 2 ** 32:
    raise ConfigError(f"seed={cfg.seed}: must be an integer in 0..2**32-1 (it seeds jax.random.PRNGKey)")
  placement = str(cfg.dataset.get("on_device", "auto")).lower()
  if placement not in ("auto", "true", "false"):
    raise ConfigError(f"dataset.on_device={cfg.dataset.on_device!r}: choose auto, true or false")
  if cfg.task.name not in TASKS:
    raise ConfigError(f"task.name={cfg.task.name!r}: choose one of {', '.join(TASKS)}")
  if cfg.task.name == "classify" and cfg.task.get("objective") is None:
    raise ConfigError("task.name=classify needs task.objective (use task=classify, conf/task/classify.yaml)")
  evaluation.check_settings(cfg.evaluation)
  data = prepare_data(cfg) if data is None else data
  mesh = mesh or make_mesh(tcfg.devices if devices is None else devices)
  eval_batch_size = tcfg.eval_batch_size or data.batch_size
  check_divisible(data.batch_size, mesh)
  check_divisible(eval_batch_size, mesh, "trainer.eval_batch_size")
  plan = make_plan(tcfg, data, eval_batch_size)
  num_classes = data.num_classes if cfg.task.name == "classify" else 0
  model = _model_init(OmegaConf.to_yaml(cfg.model), OmegaConf.to_yaml(cfg.task), data.image_shape,
                      num_classes)(jnp.uint32(cfg.seed))
  where = "task.objective" if cfg.task.name == "classify" else "loss"
  objective = build(cfg.task.objective, where) if cfg.task.name == "classify" else build(cfg.loss, "loss")
  objective.reference_batch_size = data.batch_size
  corruption = build(cfg.corruption, "corruption") if cfg.get("corruption") else None
  graphdef, params, model_state = split_model(model)
  tx = make_tx(cfg, params, max(plan.total_steps, 1))
  recon_shape, aux_shapes = forward_shapes(graphdef, params, model_state, data.image_shape)
  if model.stage == 0 and has(model, Reconstructs):  # A greedy stage reconstructs the layer below.
    if tuple(recon_shape[1:]) != data.target_shape:
      raise ConfigError(f"model output shape {tuple(recon_shape[1:])} does not match the {data.name} targets "
                        f"{data.target_shape}; fix the model config (e.g. model.output_shape)")
  objective.check(model, list(aux_shapes), data.labels_are_classes, where)
  _check_code_size(model, objective, corruption, data, aux_shapes)
  convs_on_cpu = jax.default_backend() == "cpu" and has_convolutions(model)
  unroll = tcfg.scan_unroll == "full" or (tcfg.scan_unroll == "auto" and convs_on_cpu)
  augment = Augment(**cfg.dataset.augment) if cfg.dataset.get("augment") else None
  if augment is not None and augment.active:
    augment.check(data.image_shape, data.target_shape)
  train_bytes = sum(storage_bytes(v) for v in data.train.values())
  on_device = placement == "true" or (placement == "auto" and fits_on_device(train_bytes))
  s = Setup(data, mesh, plan, model, graphdef, params, objective, tx, model_state, corruption,
            model.update_mask(params), unroll, aux_shapes, on_device=on_device,
            augment=augment if augment is not None and augment.active else None,
            compiler_options=compiler_options(tcfg, unroll and convs_on_cpu))
  if cfg.evaluation.enabled:  # Checked before training: a run never fails at its end for a config reason.
    s.evaluators = evaluation.resolve(cfg.evaluation, s, build)
    ecfg = cfg.evaluation
    if ecfg.get("every_steps"):
      periodic = ecfg.get("periodic")
      s.periodic_evaluators = s.evaluators if periodic is None else evaluation.resolve(ecfg, s, build, "periodic")
  return s


def make_tx(cfg: DictConfig, params: nnx.State, total_steps: int):
  """`optimizer` for the parameters no `param_groups` entry claims, each group's own for its parameters."""
  tx = build(cfg.optimizer, "optimizer", total_steps=total_steps)
  groups = {}
  for name, group in (cfg.get("param_groups") or {}).items():
    if set(group) != {"params", "optimizer"}:
      raise ConfigError(f"param_groups.{name}: give exactly `params` (a regular expression matching parameter "
                        f"paths) and `optimizer` (an optimizer node); got {', '.join(map(str, group))}")
    if name == DEFAULT_GROUP:
      raise ConfigError(f"param_groups.{DEFAULT_GROUP}: that name is the ungrouped parameters' (`optimizer`)")
    groups[str(name)] = (str(group.params), build(group.optimizer, f"param_groups.{name}.optimizer",
                                                  total_steps=total_steps))
  return with_param_groups(tx, groups, params, DEFAULT_GROUP)


def forward_shapes(graphdef, params, model_state, image_shape) -> Tuple[Tuple[int, ...], Dict[str, Tuple[int, ...]]]:
  """(output shape, {aux key: shape}) of the training call on one example, traced abstractly. A
  structured aux value (a posterior) counts by its key, with its first array's shape."""
  def forward(p, st, x, rng):
    return nnx.merge(graphdef, p, st)(x, rng=rng, train=True)

  out, aux = jax.eval_shape(forward, params, model_state, jax.ShapeDtypeStruct((1, *image_shape), jnp.float32),
                            jax.random.PRNGKey(0))
  return tuple(out.shape), {str(k): tuple(jax.tree.leaves(v)[0].shape) for k, v in aux.items()}


def _check_code_size(model: Model, objective, corruption, data, aux_shapes) -> None:
  """A plain MLP autoencoder (reconstruction terms only, clean input reproduced) whose code is
  at least as large as its input can learn the identity; it needs a regulariser or corruption.
  (Conv codes are exempt: pooling bottlenecks are their regulariser, SPEC 5.)"""
  plain = all(getattr(t, "reconstruction", False) for t in objective.terms.values())
  if (not plain or corruption is not None or has(model, StochasticEncoder) or model.stage or data.has_paired_targets
      or not has(model, Reconstructs)):
    return
  code, size = aux_shapes["code"], math.prod(data.image_shape)
  if len(code) == 2 and code[1] >= size:
    raise ConfigError(f"the code has {code[1]} units, not fewer than the {size} inputs: a plain autoencoder would "
                      "learn the identity; use a smaller model.latent_dim, or add a sparsity/contractive loss or a "
                      "corruption")
