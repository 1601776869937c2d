"""Bad input, table-driven: one clear line naming what is wrong and how to fix it, and a
run directory that already holds a finished run comes out byte-for-byte unchanged.

Every case is tried against a copy of a finished run with `trainer.resume=true`, so the
run gets as far as it can before it must stop. (The command-line side, exit status 2 and
no traceback, is in test_cli.py.)
"""
import gzip
import os
import shutil

import numpy as np
import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException
from conftest import digest_tree  # tests/ is on sys.path

from ae_research import train_and_evaluate
from ae_research.errors import UserError

pytestmark = pytest.mark.slow  # Whole training runs: `make test-quick` leaves them out.

BASE = ["trainer.max_steps=5", "evaluation.enabled=false", "trainer.figures=false"]


def _fake_idx_dir(directory, truncate=False):
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(0)
  for split, n in (("train", 40), ("t10k", 20)):
    for kind, array in (("images-idx3", rng.integers(0, 256, (n, 28, 28))), ("labels-idx1", rng.integers(0, 10, n))):
      raw = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, ">u4").tobytes() + array.astype(np.uint8).tobytes()
      if truncate and split == "train" and kind == "images-idx3":
        raw = raw[:len(raw) // 2]
      with gzip.open(os.path.join(directory, f"{split}-{kind}-ubyte.gz"), "wb") as f:
        f.write(raw)
  return directory


# (id, overrides, expected message fragment, workdir override or None). "{tmp}" is the case's scratch dir.
CASES = [
    ("unknown group option", ["model=transformer"], "model/transformer", None),
    ("unknown key", ["+model.latent_size=3"], "model.latent_size: unknown key", None),
    ("unknown trainer key", ["+trainer.epoch=3"], "epoch", None),
    ("wrong type (schema)", ["trainer.epochs=many"], "epochs", None),
    ("wrong type (constructor)", ["model.latent_dim=two"], "model.latent_dim", None),
    ("zero learning rate", ["optimizer.learning_rate=0"], "optimizer.learning_rate=0: must be positive", None),
    ("negative epochs", ["trainer.epochs=-1"], "trainer.epochs=-1: must be >= 0", None),
    ("zero log interval", ["trainer.log_every_steps=0"], "trainer.log_every_steps=0: must be a positive integer",
     None),
    ("zero batch size", ["dataset.batch_size=0"], "dataset.batch_size=0", None),
    ("batch larger than the data", ["dataset.batch_size=4096"], "exceeds the", None),
    ("batch not divisible by devices", ["dataset.batch_size=30"], "not divisible by the 4 devices", None),
    ("more devices than present", ["trainer.devices=9"], "trainer.devices=9", None),
    ("latent larger than input", ["model.latent_dim=64"], "would learn the identity", None),
    ("negative layer size", ["model.hidden=[16,-4]"], "hidden", None),
    ("unknown optimizer", ["optimizer.name=adamm"], "optimizer.name='adamm'", None),
    ("unknown activation", ["model.activation=swishy"], "swishy", None),
    ("loss weight for no term", ["+loss.weights.kl=1.0"], "loss.weights: kl name no term", None),
    ("corruption level out of range", ["corruption=masking", "corruption.probability=1.5"], "must lie in [0, 1)",
     None),
    ("missing data files", ["dataset=mnist", "dataset.batch_size=8", "dataset.data_dir={tmp}/empty"],
     "no IDX files of mnist", None),
    ("truncated IDX file", ["dataset=mnist", "dataset.batch_size=8", "dataset.data_dir={tmp}/corrupt"],
     "truncated", None),
    ("conv model output vs colour targets", ["model=conv", "dataset=photo_colorize", "dataset.batch_size=8"],
     "does not match the", None),
    ("unwritable output directory", [], "cannot write to the run directory", "{tmp}/a_file/run"),
    ("W&B misconfigured", ["logger.wandb.mode=sometimes"], "logger.wandb.mode='sometimes'", None),
    ("W&B online without a key", ["logger.wandb.mode=online"], "no W&B API key", None),
    ("resume with a changed shape", ["model.hidden=[16]"], "trainer.resume=true with a changed config (model.hidden", None),
    ("resume with a changed activation", ["model.activation=tanh"], "changed config (model.activation: relu → tanh)",
     None),
    ("resume with another seed", ["seed=1"], "changed config (seed: 0 → 1)", None),
    ("resume with another data scale", ["dataset.scale=unit"], "changed config (dataset.scale: centered → unit)", None),
    ("resume with fewer steps than done", ["trainer.max_steps=2"], "the run already has 1 epoch (5 steps)", None),
    ("scan_unroll typo", ["trainer.scan_unroll=partly"], "trainer.scan_unroll='partly'", None),
    ("init_from without a checkpoint", ["trainer.init_from={tmp}"], "no checkpoint there", "{tmp}/fresh"),
    ("distributed half configured", ["trainer.distributed.enabled=true",
                                     "trainer.distributed.coordinator_address=localhost:1234"], "missing", None),
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  from conftest import compose_config  # pylint: disable=g-import-not-at-top  (tests/ is on sys.path)
  run_dir = tmp_path_factory.mktemp("finished") / "run"
  train_and_evaluate(compose_config(BASE), str(run_dir))
  return run_dir


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_one_clear_line_and_keeps_outputs(case, finished_run, make_cfg, tmp_path, monkeypatch):
  _, overrides, expected, workdir = case
  monkeypatch.delenv("WANDB_API_KEY", raising=False)
  monkeypatch.setenv("NETRC", str(tmp_path / "no_netrc"))
  os.makedirs(tmp_path / "empty")
  _fake_idx_dir(tmp_path / "corrupt", truncate=True)
  (tmp_path / "a_file").write_text("not a directory")
  run_dir = tmp_path / "run"
  shutil.copytree(finished_run, run_dir)
  before = digest_tree(run_dir)
  overrides = [o.replace("{tmp}", str(tmp_path)) for o in overrides]
  with pytest.raises((UserError, HydraException, OmegaConfBaseException)) as info:
    cfg = make_cfg(BASE + ["trainer.resume=true"] + overrides)
    train_and_evaluate(cfg, workdir.replace("{tmp}", str(tmp_path)) if workdir else str(run_dir))
  message = str(info.value).strip()
  assert expected in message, message
  if isinstance(info.value, UserError):  # Ours: a single line (Hydra's own composition errors carry a hint line).
    assert "\n" not in message and len(message) < 400, message
  assert digest_tree(run_dir) == before
