"""Every test process sees 4 CPU devices (set before JAX is imported) and W&B off."""
import hashlib
import os
import tempfile

# XLA's fast-compile settings: the suite's programs are tiny and compiled once or twice each, so LLVM's
# optimisation passes cost more than they save (measured: tests/test_training.py 101 s -> 78 s cold).
# Every comparison in the suite is between runs under the same flags.
FAST_COMPILE = ("--xla_cpu_opt_preset=CPU_OPT_PRESET_FAST_COMPILE --xla_backend_optimization_level=0 "
                "--xla_llvm_disable_expensive_passes=true")
_USER_XLA_FLAGS = os.environ.get("XLA_FLAGS", "")


def xla_flags(devices: int) -> str:
  """XLA_FLAGS for a test process (or a subprocess) that sees `devices` CPU devices."""
  return f"{_USER_XLA_FLAGS} --xla_force_host_platform_device_count={devices} {FAST_COMPILE}".strip()


# Conv chunks compiled as loops: unrolled ones (the CPU default, `trainer.scan_unroll=auto`) compile ~5x
# slower; tests whose subject is not unrolling use this, and test_variants.py's conv runs cover unrolling.
CONV_AS_LOOPS = "trainer.scan_unroll=rolled"
# ...and the run's own programs optimised by LLVM after all: under FAST_COMPILE's backend level 0 a conv
# chunk runs ~10x slower (the 16-32-64 conv AE on digits, 44 steps: 9.9 s vs 1.1 s of training).
CONV_OPTIMISED = "++trainer.compiler_options.xla_backend_optimization_level=2"

# For runs whose test reads only the training logs: no end-of-run evaluation, no figures.
QUIET = ["evaluation.enabled=false", "trainer.figures=false"]

os.environ["XLA_FLAGS"] = xla_flags(4)
os.environ.setdefault("WANDB_MODE", "disabled")
# Many tests (and their subprocesses) compile the same small programs: share XLA's persistent cache.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "ae-research-test-xla-cache"))
# Every program, however quick to compile: the suite's many subprocesses then read even the tiny ones
# (tests/test_sweeps.py + test_faults.py from an empty cache: 76-78 s at 0.1 s, 68-69 s at 0; 2026-11-24).
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
os.environ.setdefault("WANDB_SILENT", "true")
# Data-only evaluation baselines are cached too (tests of the cache itself point it elsewhere).
os.environ.setdefault("AE_CACHE_DIR", os.path.join(tempfile.gettempdir(), "ae-research-test-cache"))

import pytest  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position

from ae_research import config  # noqa: E402

config.register_schemas()

# Small and fast: 8x8 digits, a narrow MLP, a few dozen steps, no W&B, no progress bar.
FAST = ["dataset=digits", "dataset.batch_size=64", "trainer.epochs=2",
        "trainer.log_every_steps=5", "trainer.eval_batch_size=null", "logger.wandb.mode=disabled",
        "logger.progress=false"]


def digest_tree(directory):
  """relative path -> SHA-256 of every file under `directory`: what "nothing saved changed" compares."""
  out = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
  return out


def compose_config(overrides=(), fast=True):
  return config.compose_config((FAST if fast else []) + list(overrides))


@pytest.fixture
def make_cfg():
  return compose_config
