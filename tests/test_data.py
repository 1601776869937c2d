"""Data sources: IDX files (and their corruption), TFDS, blocks, digits."""
import gzip
import os

import numpy as np
import pytest

from ae_research.data import dataset, sources
from ae_research.data import idx
from ae_research.data.idx import read_idx
from ae_research.data.photos import sample_photos
from ae_research.data.sklearn_data import digits_arrays, load_digits
from ae_research.data.synthetic import load_blocks, make_blocks
from ae_research.errors import DataError


def _write_idx(path, array):
  header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
  with gzip.open(path, "wb") as f:
    f.write(header + array.astype(np.uint8).tobytes())


def _fake_mnist_dir(directory, n_train=12, n_test=6):
  rng = np.random.default_rng(0)
  os.makedirs(directory, exist_ok=True)
  arrays = {}
  for split, n in (("train", n_train), ("t10k", n_test)):
    images, labels = rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n)
    _write_idx(os.path.join(directory, f"{split}-images-idx3-ubyte.gz"), images)
    _write_idx(os.path.join(directory, f"{split}-labels-idx1-ubyte.gz"), labels)
    arrays[split] = (images, labels)
  return arrays


def test_idx_round_trip_and_scaling(tmp_path):
  arrays = _fake_mnist_dir(tmp_path)
  data = sources.load_idx_dataset("mnist", batch_size=4, scale="centered", data_dir=str(tmp_path))
  assert data.image_shape == (28, 28, 1) and data.num_train == 12 and data.num_test == 6
  np.testing.assert_allclose(data.train["image"][..., 0], arrays["train"][0] / 255.0 - 0.5, atol=1e-6)
  np.testing.assert_array_equal(data.test["label"], arrays["t10k"][1])


def test_env_dir_is_used_when_no_data_dir(tmp_path, monkeypatch):
  _fake_mnist_dir(tmp_path / "mnist")
  monkeypatch.setenv("AE_DATA_DIR", str(tmp_path))
  assert sources.load_idx_dataset("mnist", batch_size=4).num_train == 12


def test_truncated_idx_is_a_clear_error(tmp_path):
  _fake_mnist_dir(tmp_path)
  path = tmp_path / "train-images-idx3-ubyte.gz"
  raw = gzip.decompress(path.read_bytes())
  with gzip.open(path, "wb") as f:
    f.write(raw[:-100])  # A valid gzip stream whose payload is short.
  with pytest.raises(DataError, match="truncated or corrupt"):
    sources.load_idx_dataset("mnist", batch_size=4, data_dir=str(tmp_path))


def test_cut_gzip_stream_is_a_clear_error(tmp_path):
  _fake_mnist_dir(tmp_path)
  path = tmp_path / "t10k-images-idx3-ubyte.gz"
  path.write_bytes(path.read_bytes()[:200])
  with pytest.raises(DataError, match="unreadable or truncated"):
    read_idx(str(path))


def test_a_gzipped_idx_file_is_decompressed_once_and_a_changed_or_damaged_entry_is_not_reused(tmp_path, monkeypatch):
  monkeypatch.setenv("AE_CACHE_DIR", str(tmp_path / "cache"))
  path = tmp_path / "train-images-idx3-ubyte.gz"
  first = np.arange(2 * 28 * 28).reshape(2, 28, 28) % 256
  _write_idx(path, first)
  np.testing.assert_array_equal(idx.read_idx_cached(str(path)), first)
  entries = list((tmp_path / "cache" / "idx").iterdir())
  assert len(entries) == 1 and entries[0].suffix == ".npy"
  with monkeypatch.context() as m:  # The second read never decompresses.
    m.setattr(idx, "read_idx", lambda p: pytest.fail(f"decompressed {p} again"))
    np.testing.assert_array_equal(idx.read_idx_cached(str(path)), first)
  second = 255 - first  # The same size: only its modification time tells the files apart.
  _write_idx(path, second)
  os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
  np.testing.assert_array_equal(idx.read_idx_cached(str(path)), second)
  for entry in (tmp_path / "cache" / "idx").iterdir():
    entry.write_bytes(entry.read_bytes()[:100])  # A damaged entry: decoded again and replaced.
  np.testing.assert_array_equal(idx.read_idx_cached(str(path)), second)
  np.testing.assert_array_equal(idx.read_idx_cached(str(path)), second)


def test_bad_magic_is_a_clear_error(tmp_path):
  path = tmp_path / "x.gz"
  with gzip.open(path, "wb") as f:
    f.write(b"PK\x03\x04garbage")
  with pytest.raises(DataError, match="bad magic"):
    read_idx(str(path))


def test_missing_data_names_the_ways_to_get_it(tmp_path, monkeypatch):
  monkeypatch.delenv("AE_DATA_DIR", raising=False)
  # An empty TFDS directory: TFDS finds nothing prepared and, without download=true, does not try.
  with pytest.raises(DataError) as info:
    sources.load_idx_dataset("mnist", batch_size=4, tfds_data_dir=str(tmp_path))
  message = str(info.value)
  assert "data_dir" in message and "AE_DATA_DIR" in message and "download=true" in message
  assert "\n" not in message


def test_incomplete_directory_is_a_clear_error(tmp_path):
  _fake_mnist_dir(tmp_path)
  os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
  with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
    sources.load_idx_dataset("mnist", batch_size=4, data_dir=str(tmp_path))


def test_tfds_path_with_mock_data(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  monkeypatch.delenv("AE_DATA_DIR", raising=False)
  with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
    data = sources.load_idx_dataset("mnist", batch_size=4, tfds_data_dir=str(tmp_path))
  assert data.image_shape == (28, 28, 1) and data.num_train == 20 and data.num_test == 20
  images = np.asarray(data.train["image"])
  assert 0.0 <= images.min() and images.max() <= 1.0


def test_blocks_geometry_and_determinism():
  images, heights, widths = make_blocks(200, 5, 22, 28, seed=3)
  assert heights.min() >= 5 and heights.max() <= 22 and widths.min() >= 5 and widths.max() <= 22
  np.testing.assert_array_equal(images.sum(axis=(1, 2)), heights * widths)
  for img, h, w in zip(images[:20], heights, widths):
    rows, cols = np.flatnonzero(img.any(1)), np.flatnonzero(img.any(0))
    assert len(rows) == h and len(cols) == w
    assert rows[0] == (28 - h) // 2 and cols[0] == (28 - w) // 2  # Centred.
  again, _, _ = make_blocks(200, 5, 22, 28, seed=3)
  np.testing.assert_array_equal(images, again)
  data = load_blocks("blocks", batch_size=10, num_train=80, num_test=20, seed=3)
  assert data.num_train == 80 and data.num_test == 20 and data.label_name == "height"


def test_digits_are_scikit_learns_digits():
  import sklearn.datasets  # pylint: disable=g-import-not-at-top
  images, targets = digits_arrays()
  reference = sklearn.datasets.load_digits()
  np.testing.assert_array_equal(images, reference.images)
  np.testing.assert_array_equal(targets, reference.target)


def test_sample_photos_are_scikit_learns():
  import sklearn.datasets  # pylint: disable=g-import-not-at-top
  ours, reference = sample_photos(), sklearn.datasets.load_sample_images().images
  assert len(ours) == len(reference) == 2
  for a, b in zip(ours, reference):
    np.testing.assert_array_equal(a, b)


def test_digits_split_is_fixed():
  a, b = load_digits("digits", 32, seed=0), load_digits("digits", 32, seed=5)
  assert a.num_train + a.num_test == 1797 and a.image_shape == (8, 8, 1)
  np.testing.assert_array_equal(a.test["label"], b.test["label"])


@pytest.mark.skipif(not os.path.isdir(sources.SYSTEM_DIRS["fashion_mnist"]),
                    reason="Debian's dataset-fashion-mnist is not installed (make test installs it)")
def test_real_fashion_mnist_from_the_debian_package(monkeypatch):
  monkeypatch.delenv("AE_DATA_DIR", raising=False)
  data = sources.load_idx_dataset("fashion_mnist", batch_size=256, scale="centered")
  assert (data.num_train, data.num_test, data.image_shape) == (60000, 10000, (28, 28, 1))
  np.testing.assert_array_equal(np.bincount(data.train["label"]), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(data.test["label"]), [1000] * 10)
  assert data.train["image"].raw.dtype == np.uint8  # Kept as the bytes stored: a quarter of the memory.
  images = np.asarray(data.train["image"])
  assert images.dtype == np.float32 and images.min() == -0.5 and images.max() == 0.5
  raw = sources.read_idx_splits(sources.SYSTEM_DIRS["fashion_mnist"])["train"][0]
  np.testing.assert_array_equal(images[..., 0], dataset.scale_pixels(raw, "centered"))
