"""Data that do not live on the device: streamed batches equal the on-device ones, resume exactly after
kill -9 mid-epoch; 8-bit storage; any TFDS image set by name; per-batch augmentation."""
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ae_research import train_and_evaluate
from ae_research.data.augment import Augment
from ae_research.data.dataset import scale_pixels
from ae_research.data.storage import ScaledImages
from ae_research.population.runs import train_runs
from ae_research.training.saved import load_run
from ae_research.writers.jsonl import read_jsonl
from conftest import QUIET  # tests/ is on sys.path

pytestmark = pytest.mark.slow  # Subprocesses and end-to-end runs: `make test-quick` leaves them out.


def _leaves(run_dir):
  state = load_run(str(run_dir), devices=1).state
  return [np.asarray(x) for x in jax.tree.leaves((state.params, state.opt_state))]


def _same(a_dir, b_dir):
  for a, b in zip(_leaves(a_dir), _leaves(b_dir)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("extra", [[], ["model=conv", "model.channels=[4,8]", "loss=bce", "dataset.scale=unit",
                                        "trainer.scan_unroll=full"]], ids=["mlp_rolled", "conv_unrolled"])
def test_a_streamed_run_trains_on_the_same_batches_as_on_device(make_cfg, tmp_path, extra):
  # 30 steps of 22-step epochs: chunks of 5 cross an epoch boundary; the last chunk is shorter than its program.
  common = QUIET + extra + ["trainer.max_steps=33"]
  train_and_evaluate(make_cfg(common + ["dataset.on_device=true"]), str(tmp_path / "device"))
  summary = train_and_evaluate(make_cfg(common + ["dataset.on_device=false"]), str(tmp_path / "streamed"))
  assert summary["step"] == 33
  _same(tmp_path / "device", tmp_path / "streamed")


def test_a_streamed_population_matches_on_device(make_cfg, tmp_path):
  cfgs = lambda where: [make_cfg(QUIET + ["trainer.max_steps=12", f"seed={s}", f"dataset.on_device={where}"])
                        for s in (0, 1)]
  train_runs(cfgs("true"), [str(tmp_path / "device" / str(i)) for i in range(2)])
  results = train_runs(cfgs("false"), [str(tmp_path / "streamed" / str(i)) for i in range(2)])
  assert all(r["population/size"] == 2 for r in results)
  for i in range(2):
    _same(tmp_path / "device" / str(i), tmp_path / "streamed" / str(i))


def test_fashion_mnist_forced_to_stream_matches_on_device(make_cfg, tmp_path):
  common = ["logger.progress=false", "logger.wandb.mode=disabled", *QUIET, "trainer.max_steps=60",
            "trainer.log_every_steps=20"]
  device = train_and_evaluate(make_cfg(common, fast=False), str(tmp_path / "device"))
  streamed = train_and_evaluate(make_cfg(common + ["dataset.on_device=false"], fast=False), str(tmp_path / "streamed"))
  assert streamed["train/loss"] == pytest.approx(device["train/loss"], rel=1e-6)
  assert streamed["eval/loss"] == pytest.approx(device["eval/loss"], rel=1e-6)


def test_auto_streams_what_does_not_fit(make_cfg, monkeypatch):
  from ae_research.training import setup as setup_lib  # pylint: disable=g-import-not-at-top
  assert setup_lib.setup(make_cfg([]), devices=1).on_device  # 1,437 8x8 digits fit.
  monkeypatch.setattr(setup_lib, "fits_on_device", lambda nbytes: nbytes < 1000)
  assert not setup_lib.setup(make_cfg([]), devices=1).on_device


RUN = ["dataset=digits", "dataset.batch_size=64", "trainer.epochs=1000", "trainer.max_steps=150",
       "trainer.eval_batch_size=null", "trainer.checkpoint_min_interval_s=0", "trainer.log_every_steps=5",
       "logger.progress=false", "logger.wandb.mode=disabled", *QUIET]


def test_kill_9_mid_epoch_in_streamed_mode_resumes_exactly(make_cfg, tmp_path):
  train_and_evaluate(make_cfg(RUN, fast=False), str(tmp_path / "ref"))  # On the device.
  run_dir = tmp_path / "run"
  for trial, target in enumerate((17, 61)):  # Mid-epoch (22-step epochs), once from scratch, once resumed.
    proc = subprocess.Popen([sys.executable, "-m", "ae_research.train", *RUN, "dataset.on_device=false",
                             f"hydra.run.dir={run_dir}", *(["trainer.resume=true"] if trial else [])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    log, t0 = run_dir / "metrics.jsonl", time.time()
    while proc.poll() is None and time.time() - t0 < 180:
      if log.exists() and max((r["step"] for r in read_jsonl(str(log))), default=0) >= target:
        break
      time.sleep(0.02)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.kill()
    proc.communicate(timeout=60)
  train_and_evaluate(make_cfg(RUN + ["dataset.on_device=false", "trainer.resume=true"], fast=False), str(run_dir))
  _same(run_dir, tmp_path / "ref")


def test_8_bit_storage_reads_as_scale_pixels_on_host_and_device():
  raw = np.random.default_rng(0).integers(0, 256, (50, 6, 6, 1)).astype(np.uint8)
  for scale in ("unit", "centered"):
    images = ScaledImages(raw, 255.0, scale)
    want = scale_pixels(raw, scale)
    np.testing.assert_array_equal(images[:], want)
    np.testing.assert_array_equal(np.asarray(images)[[3, 1]], want[[3, 1]])
    got = jax.jit(images.decode)(raw, jnp.asarray(images.table))
    np.testing.assert_array_equal(got, want)  # Exactly: XLA's x / 255 would round 126 of 256 values differently.
    assert images.shape == raw.shape and images.dtype == np.float32 and len(images) == 50


def test_any_tfds_image_data_set_by_name(make_cfg, tmp_path, monkeypatch):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv("AE_CACHE_DIR", str(tmp_path / "cache"))
  run = ["dataset=tfds", "dataset.name=cifar10", "dataset.batch_size=16", *QUIET, "trainer.max_steps=6",
         "model.hidden=[16]", "dataset.on_device=false"]
  with tfds.testing.mock_data(num_examples=64, policy=tfds.testing.MockPolicy.USE_CODE):
    from ae_research.training.setup import prepare_data  # pylint: disable=g-import-not-at-top
    data = prepare_data(make_cfg(run))
    assert isinstance(data.train["image"], ScaledImages) and data.image_shape == (32, 32, 3)
    assert data.num_train == 64 and len(data.class_names) == 10 and set(data.train) == {"image", "label"}
    cached = sorted(os.listdir(tmp_path / "cache" / "tfds" / "cifar10"))
    assert len(cached) == 4 and all(name.endswith(".npy") for name in cached)  # Image and label, two splits.
    again = prepare_data(make_cfg(run))  # From the cache, memory-mapped.
    assert isinstance(again.train["image"].raw, np.memmap)
    np.testing.assert_array_equal(again.train["image"][:5], data.train["image"][:5])
    summary = train_and_evaluate(make_cfg(run), str(tmp_path / "run"))
  assert summary["step"] == 6 and np.isfinite(summary["train/loss"])


def test_augmentation_crops_and_flips_per_example_and_moves_targets_along():
  x = jnp.arange(2 * 4 * 5, dtype=jnp.float32).reshape(2, 4, 5, 1)
  batch = {"image": x, "target": x * 10, "label": jnp.array([0, 1])}
  flipped = Augment(horizontal_flip=True)(jax.random.PRNGKey(0), batch)
  for i in range(2):
    assert np.array_equal(flipped["image"][i], x[i]) or np.array_equal(flipped["image"][i], x[i, :, ::-1])
  np.testing.assert_array_equal(flipped["target"], flipped["image"] * 10)
  cropped = Augment(crop_padding=1)(jax.random.PRNGKey(3), batch)
  assert cropped["image"].shape == x.shape and np.array_equal(cropped["label"], batch["label"])
  np.testing.assert_array_equal(cropped["target"], cropped["image"] * 10)
  assert not np.array_equal(cropped["image"], x)  # Some example moved (seeded).
  assert np.array_equal(Augment(crop_padding=1)(jax.random.PRNGKey(3), batch)["image"], cropped["image"])


def test_an_augmented_run_is_reproducible(make_cfg, tmp_path):
  aug = QUIET + ["trainer.max_steps=8", "dataset.augment.crop_padding=1", "dataset.augment.horizontal_flip=true"]
  a = train_and_evaluate(make_cfg(aug), str(tmp_path / "a"))
  b = train_and_evaluate(make_cfg(aug + ["dataset.on_device=false"]), str(tmp_path / "b"))
  plain = train_and_evaluate(make_cfg(QUIET + ["trainer.max_steps=8"]), str(tmp_path / "plain"))
  assert a["train/loss"] == b["train/loss"] != plain["train/loss"]
