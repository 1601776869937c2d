"""dSprites: the factor grid, the renderer's geometry, the cache, the original file's reader, the sampler."""
import logging
import os
import shutil

import numpy as np
import pytest

from ae_research.data import dsprites, dsprites_render
from ae_research.data.dsprites import (FACTOR_SIZES, dsprites_sampler, factor_grid, factor_index, load_dsprites,
                                       load_dsprites_arrays)
from ae_research.data.dsprites_render import render, render_values
from ae_research.errors import DataError

N = 737_280
SQUARE, ELLIPSE, HEART = range(3)


@pytest.fixture(scope="module")
def cached32(tmp_path_factory):
  """(cache root, images): the 32x32 grid drawn once (2 s) into a cache of its own."""
  root = str(tmp_path_factory.mktemp("cache"))
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("AE_CACHE_DIR", root)
    images = dsprites.dsprites_images(32)
  return root, images


def same(a, b):
  """np.array_equal in slices: the whole grid's temporaries would cost seconds of page faults."""
  step = 1 << 15
  return a.shape == b.shape and all(np.array_equal(a[i:i + step], b[i:i + step]) for i in range(0, len(a), step))


def rows(*factors):
  return np.array(factors, np.int32).reshape(-1, 5)


def test_factor_grid_holds_every_combination_once_in_the_original_order():
  grid = factor_grid()
  assert grid.shape == (N, 5) and grid.dtype == np.int32 and N == np.prod(FACTOR_SIZES)
  assert (grid.min(axis=0) == 0).all() and (grid.max(axis=0) == np.array(FACTOR_SIZES) - 1).all()
  # Mixed-radix row numbers 0..N-1 in order: each combination once, posY fastest, shape slowest.
  np.testing.assert_array_equal(factor_index(grid), np.arange(N))
  np.testing.assert_array_equal(grid[[1, 32, 1024, 40 * 1024, N - 1]], [[0, 0, 0, 0, 1], [0, 0, 0, 1, 0],
                                [0, 0, 1, 0, 0], [0, 1, 0, 0, 0], [2, 5, 39, 31, 31]])
  np.testing.assert_allclose(dsprites_render.FACTOR_VALUES[2][[0, 1, 39]], [0, 0.16110732, 2 * np.pi], atol=1e-8)


def test_render_matches_a_per_image_reference_on_the_whole_canvas():
  """The windowed, pasted renderer against point-sampling every pixel of every image directly."""
  factors = np.random.default_rng(3).integers(0, FACTOR_SIZES, (60, 5))
  for res in (64, 32):
    got = render(factors, res)
    centre = (16 + factors[:, 3:].astype(np.float64)) * (res / 64)
    for image, f, (cx, cy) in zip(got, factors, centre):
      scale, angle = dsprites_render.FACTOR_VALUES[1][f[1]], dsprites_render.FACTOR_VALUES[2][f[2]]
      px = np.arange(res) + 0.5
      dx, dy = (px[None, :] - cx) / (scale * res), (cy - px[:, None]) / (scale * res)
      u, v = np.cos(angle) * dx + np.sin(angle) * dy, np.cos(angle) * dy - np.sin(angle) * dx
      np.testing.assert_array_equal(image, dsprites_render._inside(f[0], u, v))  # pylint: disable=protected-access
    assert got.any(axis=(1, 2)).all() and not got[:, [0, -1]].any() and not got[:, :, [0, -1]].any()


def test_area_grows_with_scale_squared():
  for shape in range(3):
    for orientation, pos in ((0, 15), (7, 3), (13, 28)):
      areas = render(rows([[shape, s, orientation, pos, 31 - pos] for s in range(6)]), 64).sum(axis=(1, 2))
      assert (np.diff(areas) > 0).all(), (shape, orientation, areas)
      assert areas[-1] / areas[0] == pytest.approx(4.0, rel=0.05), (shape, orientation, areas)


def boundary(image):
  """Pixels with both an on and an off pixel in their 3x3 neighbourhood."""
  padded = np.pad(image, 1)
  windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3))
  return windows.any(axis=(2, 3)) & ~windows.all(axis=(2, 3))


def test_rotation_symmetries():
  for res in (64, 32):
    for pos in (0, 15, 31):
      def at(shape, angle, pos=pos, res=res):
        return render_values([shape], [1.0], [angle], [pos / 31], [pos / 31], res)[0]
      # Exact quarter and half turns about a pixel corner or centre map the sample points onto
      # themselves: no pixel differs.
      np.testing.assert_array_equal(at(SQUARE, np.pi / 2), at(SQUARE, 0.0))
      np.testing.assert_array_equal(at(ELLIPSE, np.pi), at(ELLIPSE, 0.0))
      # Orientation 39 is 2 pi, the same image as orientation 0 (as in the original).
      for shape in range(3):
        np.testing.assert_array_equal(*render(rows([shape, 5, 39, pos, pos], [shape, 5, 0, pos, pos]), res))
      # The grid's orientation 10 is 92.3 degrees and 20 is 184.6 (linspace(0, 2 pi, 40)): only boundary
      # pixels differ (at 64x64 and scale 1: 28 of the square's 400, 20 of the ellipse's 296).
      for shape, orientation in ((SQUARE, 10), (ELLIPSE, 20)):
        turned, still = render(rows([shape, 5, orientation, pos, pos], [shape, 5, 0, pos, pos]), res)
        differ = turned != still
        assert not (differ & ~boundary(still)).any()
        assert differ.sum() <= 0.1 * still.sum()


def test_position_moves_the_centroid_monotonically():
  for res in (64, 32):
    steps = np.arange(32)
    for shape in range(3):
      for axis in (0, 1):  # posX, posY
        factors = np.tile([shape, 3, 7, 12, 20], (32, 1))
        factors[:, 3 + axis] = steps
        images = render(factors, res).astype(np.float64)
        ys, xs = np.mgrid[:res, :res] + 0.5
        area = images.sum(axis=(1, 2))
        cx, cy = (images * xs).sum(axis=(1, 2)) / area, (images * ys).sum(axis=(1, 2)) / area
        moving, fixed = (cx, cy) if axis == 0 else (cy, cx)
        assert (np.diff(moving) > 0).all(), (res, shape, axis, moving)
        assert np.ptp(fixed) < 0.5, (res, shape, axis, fixed)
        # The centre is the shape's centroid: (16 + j) / 64 of the side.
        np.testing.assert_allclose(moving, (16 + steps) * res / 64, atol=0.5)


def test_cache_is_bit_identical_to_drawing_and_is_read_not_redrawn(cached32, monkeypatch):
  root, drawn = cached32  # What the first call drew, then cached.
  path = os.path.join(root, "dsprites", f"dsprites_r32_v{dsprites.VERSION}.npz")
  assert os.path.isfile(path) and not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]
  assert drawn.shape == (N, 32, 32) and drawn.dtype == np.uint8 and drawn.max() == 1
  some = np.sort(np.random.default_rng(0).choice(N, 20_000, replace=False))
  np.testing.assert_array_equal(drawn[some], render(factor_grid()[some], 32))
  monkeypatch.setenv("AE_CACHE_DIR", root)
  monkeypatch.setattr(dsprites, "render", lambda *a: pytest.fail("drew the images instead of reading the cache"))
  dsprites.release_images()  # From the file, not from what this process keeps.
  assert same(dsprites.dsprites_images(32), drawn)


def test_a_process_reads_the_cache_once_while_the_file_is_unchanged(cached32, monkeypatch):
  root, drawn = cached32
  path = os.path.join(root, "dsprites", f"dsprites_r32_v{dsprites.VERSION}.npz")
  monkeypatch.setenv("AE_CACHE_DIR", root)
  first = dsprites.dsprites_images(32)
  assert not first.flags.writeable  # Shared by every data set built from it.
  reads, read = [], dsprites._read_cache  # pylint: disable=protected-access
  monkeypatch.setattr(dsprites, "_read_cache", lambda *a: reads.append(a) or read(*a))
  assert dsprites.dsprites_images(32) is first and not reads
  stat = os.stat(path)
  os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # The file changed since: read it again.
  again = dsprites.dsprites_images(32)
  assert len(reads) == 1 and again is not first and same(again, drawn)
  dsprites.release_images()
  assert dsprites.dsprites_images(32) is not again and len(reads) == 2


@pytest.mark.parametrize("damage", ["flip", "truncate", "stale"])
def test_corrupt_cache_is_detected_and_redrawn(cached32, tmp_path, monkeypatch, caplog, damage):
  root, drawn = cached32
  name = f"dsprites_r32_v{dsprites.VERSION}.npz"
  os.makedirs(tmp_path / "dsprites")
  path = str(tmp_path / "dsprites" / name)
  shutil.copy(os.path.join(root, "dsprites", name), path)
  size = os.path.getsize(path)
  if damage == "stale":  # A complete file of another drawing version under this name.
    with np.load(path) as z:
      np.savez(path, **{**z, "version": np.asarray(dsprites.VERSION + 1)})
  else:
    with open(path, "r+b") as f:
      if damage == "flip":  # One bit in the middle of the packed images: the zip's CRC-32 catches it.
        f.seek(size // 2)
        byte = f.read(1)[0]
        f.seek(size // 2)
        f.write(bytes([byte ^ 0x10]))
      else:
        f.truncate(size // 3)
  monkeypatch.setenv("AE_CACHE_DIR", str(tmp_path))
  draws = []  # Drawing again is what the test above covers; here, the images already drawn stand in.
  monkeypatch.setattr(dsprites, "render", lambda f, r: draws.append(r) or drawn.view(bool))
  with caplog.at_level(logging.WARNING, logger="ae_research"):
    again = dsprites.dsprites_images(32)
  assert draws == [32] and "unreadable" in caplog.text and path in caplog.text
  assert again is not None and os.path.getsize(path) == size  # Rewritten whole...
  monkeypatch.setattr(dsprites, "render", lambda *a: pytest.fail("the rewritten cache was not read"))
  assert same(dsprites.dsprites_images(32), drawn)  # ...and read back.


def test_unwritable_cache_draws_in_memory(tmp_path, monkeypatch):
  (tmp_path / "file").write_text("")
  monkeypatch.setenv("AE_CACHE_DIR", str(tmp_path / "file" / "cache"))
  assert dsprites.cache_file(32) is None
  monkeypatch.setattr(dsprites, "factor_grid", lambda: np.zeros((N, 5), np.int32))  # Cheap: one image.
  monkeypatch.setattr(dsprites, "render", lambda f, r: np.ones((len(f), r, r), bool))
  assert dsprites.dsprites_images(32).shape == (N, 32, 32)


def write_original(path, factors, images=None):
  """An npz with the original's keys (and its constant colour column) holding only `factors`' rows."""
  images = render(factors, 64).astype(np.uint8) if images is None else images
  classes = np.concatenate([np.zeros((len(factors), 1), np.int64), factors], axis=1)
  np.savez_compressed(path, imgs=images, latents_classes=classes, latents_values=classes.astype(np.float64))


def test_original_format_file_is_read(tmp_path):
  factors = factor_grid()[np.sort(np.random.default_rng(0).choice(N, 300, replace=False))]
  path = str(tmp_path / dsprites.ORIGINAL_FILE)
  write_original(path, factors)
  images, got = load_dsprites_arrays(64, path=path)
  np.testing.assert_array_equal(got, factors)
  np.testing.assert_array_equal(images, render(factors, 64))
  small, _ = load_dsprites_arrays(32, path=path)
  assert small.shape == (300, 32, 32) and small.dtype == np.uint8
  # Halving keeps the shapes: few pixels differ from drawing at 32x32 directly.
  assert (small != render(factors, 32)).sum(axis=(1, 2)).mean() < 6

  data = load_dsprites("dsprites", batch_size=32, seed=5, resolution=32, path=path, num_test=40)
  assert data.num_train == 300 and data.num_test == 40 and data.image_shape == (32, 32, 1)
  assert data.label_name == "shape" and data.label_kind == "factors" and data.has_factors
  assert data.train["image"].dtype == np.float32 and np.asarray(data.train["image"]).max() == 1.0
  np.testing.assert_array_equal(data.train["image"][..., 0], small)
  np.testing.assert_array_equal(data.train["label"], factors[:, 0])
  np.testing.assert_array_equal(data.train["factors"], factors)
  test_rows = np.sort(np.random.default_rng(5).choice(300, 40, replace=False))  # Drawn from the training set.
  np.testing.assert_array_equal(data.test["factors"], factors[test_rows])
  np.testing.assert_array_equal(data.test["image"], data.train["image"][test_rows])
  assert data.test["label"].dtype == data.train["factors"].dtype == np.int32


@pytest.mark.parametrize("fault", ["missing", "not_npz", "wrong_shape", "wrong_keys", "not_binary", "bad_classes"])
def test_bad_original_file_is_a_one_line_data_error(tmp_path, fault):
  path = str(tmp_path / dsprites.ORIGINAL_FILE)
  factors = factor_grid()[:4]
  if fault == "not_npz":
    with open(path, "wb") as f:
      f.write(os.urandom(1000))
  elif fault == "wrong_shape":
    write_original(path, factors, images=np.zeros((4, 32, 32), np.uint8))
  elif fault == "wrong_keys":
    np.savez(path, images=np.zeros((4, 64, 64), np.uint8))
  elif fault == "not_binary":
    write_original(path, factors, images=np.full((4, 64, 64), 255, np.uint8))
  elif fault == "bad_classes":
    write_original(path, factors + np.array([0, 0, 40, 0, 0]), images=np.zeros((4, 64, 64), np.uint8))
  with pytest.raises(DataError) as e:
    load_dsprites_arrays(64, path=path)
  assert path in str(e.value) and "\n" not in str(e.value)


def test_sampler_observations_are_the_grid_images(cached32):
  _, images = cached32
  sampler = dsprites_sampler(images)
  assert sampler.factor_sizes == FACTOR_SIZES and len(sampler.factor_names) == 5
  factors = sampler.sample_factors(400, np.random.default_rng(1))
  assert factors.shape == (400, 5) and factors.dtype == np.int32
  assert (factors >= 0).all() and (factors < FACTOR_SIZES).all()
  np.testing.assert_array_equal(factors, sampler.sample_factors(400, np.random.default_rng(1)))
  obs = sampler.observations(factors)
  assert obs.shape == (400, 32, 32, 1) and obs.dtype == np.float32
  np.testing.assert_array_equal(obs[..., 0], render(factors, 32))


def test_sampler_accepts_rows_in_any_order_and_needs_every_combination():
  grid = factor_grid()
  perm = np.random.default_rng(2).permutation(N)
  # One-pixel "images" holding their grid row number, shuffled with their factors.
  images = np.arange(N, dtype=np.float64).reshape(N, 1, 1)[perm]
  sampler = dsprites_sampler(images, factors=grid[perm])
  factors = sampler.sample_factors(100, np.random.default_rng(0))
  np.testing.assert_array_equal(sampler.observations(factors)[:, 0, 0, 0], factor_index(factors))
  with pytest.raises(DataError):
    dsprites_sampler(images[:10])
  with pytest.raises(DataError):
    dsprites_sampler(images, factors=np.concatenate([grid[:-1], grid[:1]]))
