"""MNIST-family data sets: local IDX files first, TensorFlow Datasets otherwise.

Lookup order for `name` in {fashion_mnist, mnist}:
  1. `data_dir` from the config (an explicit choice: missing files there are an error);
  2. `$AE_DATA_DIR/<name>/`;
  3. the Debian package's directory (Fashion-MNIST: `apt-get install dataset-fashion-mnist`);
  4. a TFDS copy already prepared as array_record (read without TensorFlow), or one TFDS
     downloads and prepares when `download=true` (it hangs for minutes without network,
     so it is never attempted unless asked).
"""
import os
from typing import Dict, Optional, Tuple

import numpy as np

from ae_research.data.dataset import DIGIT_NAMES, ArrayDataset, check_scale, with_channel_axis
from ae_research.data.idx import find_idx_file, read_idx_cached
from ae_research.data.storage import ScaledImages
from ae_research.errors import ConfigError, DataError

SYSTEM_DIRS = {"fashion_mnist": "/usr/share/datasets/fashion-mnist"}
CLASS_NAMES = {"fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                                 "Bag", "Ankle boot"),
               "mnist": DIGIT_NAMES}
_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def _idx_dir_candidates(name: str, data_dir: Optional[str]):
  if data_dir:
    return [data_dir]
  dirs = []
  if os.environ.get("AE_DATA_DIR"):
    dirs.append(os.path.join(os.environ["AE_DATA_DIR"], name))
  if name in SYSTEM_DIRS:
    dirs.append(SYSTEM_DIRS[name])
  return dirs


def read_idx_splits(directory: str) -> Optional[Dict[str, Tuple[np.ndarray, np.ndarray]]]:
  """{split: (uint8 images (N, 28, 28), labels)} from `directory`, or None if files are absent."""
  paths = {split: [find_idx_file(directory, stem) for stem in stems] for split, stems in _FILES.items()}
  if not any(p for pair in paths.values() for p in pair):
    return None
  missing = [stem for split, stems in _FILES.items() for stem, p in zip(stems, paths[split]) if p is None]
  if missing:
    raise DataError(f"{directory}: incomplete IDX data set, missing {', '.join(missing)} (.gz); "
                    "put all four original files there")
  out = {}
  for split, (img_path, lbl_path) in paths.items():
    images, labels = read_idx_cached(img_path), read_idx_cached(lbl_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
      raise DataError(f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match; "
                      "the files are mixed up or corrupt")
    out[split] = (images, labels)
  return out


def read_tfds_splits(name: str, data_dir: Optional[str], download: bool):
  """{split: (uint8 images (N, H, W), labels)} through `tfds.data_source` (array_record, no TF)."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import, rarely needed)
  out = {}
  for split in ("train", "test"):
    try:
      src = tfds.data_source(name, split=split, data_dir=data_dir, download=download,
                             builder_kwargs={"file_format": "array_record"})
    except Exception as e:  # TFDS raises assorted errors for "not prepared"; all mean the same here.
      if download:
        raise DataError(f"TFDS could not download/prepare '{name}': {str(e).splitlines()[0]}") from None
      return None
    records = [src[i] for i in range(len(src))]
    images = np.stack([np.asarray(r["image"]) for r in records])
    out[split] = (images[..., 0] if images.shape[-1] == 1 else images,
                  np.asarray([r["label"] for r in records]))
  return out


def load_idx_dataset(name: str, batch_size: int, scale: str = "unit", seed: int = 0,
                     data_dir: Optional[str] = None, tfds_data_dir: Optional[str] = None,
                     download: bool = False) -> ArrayDataset:
  """Fashion-MNIST or MNIST as an `ArrayDataset` (images (N, 28, 28, 1))."""
  del seed  # The original train/test split is fixed.
  if name not in ("fashion_mnist", "mnist"):
    raise ConfigError(f"dataset.name={name!r}: the IDX loader knows fashion_mnist and mnist")
  check_scale(scale)
  if data_dir and not os.path.isdir(data_dir):
    raise DataError(f"dataset.data_dir={data_dir}: no such directory; point it at the four IDX .gz files")
  splits = None
  for directory in _idx_dir_candidates(name, data_dir):
    splits = read_idx_splits(directory) if os.path.isdir(directory) else None
    if splits is not None:
      break
    if data_dir:
      raise DataError(f"dataset.data_dir={data_dir}: no IDX files of {name} there "
                      "(train-images-idx3-ubyte.gz, ...); put the four original files there")
  if splits is None:
    splits = read_tfds_splits(name, tfds_data_dir, download)
  if splits is None:
    hint = " or `apt-get install -y dataset-fashion-mnist`" if name == "fashion_mnist" else ""
    raise DataError(
        f"no copy of {name} found: (1) put the four IDX .gz files in dataset.data_dir=DIR or "
        f"$AE_DATA_DIR/{name}/{hint}; (2) prepare it with TFDS (array_record) in "
        f"dataset.tfds_data_dir; or (3) pass dataset.download=true on a machine with network")
  # The images stay the bytes they are stored as (`ScaledImages`): a quarter of the float32 memory on
  # the host and on the device, and no 0.6 s float conversion at start-up; every read gives the
  # float32 values `scale_pixels` would. SPEC 1's default run, two rounds (2026-12-03): peak RSS
  # 787-943 -> 485-508 MiB, and 59-75k -> 73-84k samples/s (a batch gathers a quarter of the bytes).
  return ArrayDataset(
      name=name, batch_size=batch_size, scale=scale, class_names=CLASS_NAMES[name],
      **{split: {"image": ScaledImages(with_channel_axis(images), 255.0, scale), "label": labels.astype(np.int32)}
         for split, (images, labels) in splits.items()})
