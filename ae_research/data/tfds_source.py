"""Any TensorFlow Datasets image data set by name: `dataset=tfds dataset.name=cifar10`.

The data set must be prepared as array_record in `dataset.tfds_data_dir` (read with `tfds.data_source`,
no TensorFlow needed), or `dataset.download=true` lets TFDS download and prepare it (never attempted
otherwise: without a network TFDS retries for minutes). Its records are decoded once into uint8
arrays cached under `$AE_CACHE_DIR/tfds/` (one `.npy` per split and feature, written atomically and
keyed by the data set's name, version and size), which later runs memory-map: a split larger than
memory is then read by the rows a batch needs (`dataset.on_device=false` streams them), never whole.
The image feature becomes "image" (`ScaledImages`: uint8 storage, float32 reads); a class-label
feature becomes "label" with its class names; every other numeric scalar or fixed-shape feature is
passed on as a batch key of its own name.
"""
import hashlib
import logging
import os
from typing import Dict, Optional, Tuple

import numpy as np
from tqdm import tqdm

from ae_research.cache import cache_dir
from ae_research.data.dataset import ArrayDataset
from ae_research.data.storage import ScaledImages
from ae_research.errors import DataError

log = logging.getLogger("ae_research")


def _source(name: str, split: str, data_dir: Optional[str], download: bool):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (slow import, rarely needed)
  try:
    return tfds.data_source(name, split=split, data_dir=data_dir, download=download,
                            builder_kwargs={"file_format": "array_record"})
  except Exception as e:  # TFDS raises assorted errors for "unknown" and "not prepared"; all mean one thing here.
    how = ("TFDS could not download/prepare it" if download else
           "it is not prepared there; prepare it as array_record, or pass dataset.download=true on a machine with "
           "network")
    raise DataError(f"dataset.name={name} (split {split}, tfds_data_dir={data_dir}): {how} "
                    f"({str(e).splitlines()[0][:160]})") from None


def _features(info) -> Tuple[str, Optional[str], Dict[str, object]]:
  """(image feature, class-label feature or None, {other feature: its tfds feature})."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  features = info.features
  images = [k for k, f in features.items() if isinstance(f, tfds.features.Image)]
  if not images:
    raise DataError(f"dataset.name={info.name}: no image feature (features: {', '.join(features)}); "
                    "ae-research trains on image data sets")
  labels = [k for k, f in features.items() if isinstance(f, tfds.features.ClassLabel)]
  label = "label" if "label" in labels else (labels[0] if labels else None)
  others = {k: f for k, f in features.items() if k not in (images[0], label) and np.issubdtype(
      np.dtype(getattr(f, "np_dtype", np.dtype(object))), np.number)}
  return images[0], label, others


def _cache_paths(name: str, split: str, info, count: int, keys) -> Optional[Dict[str, str]]:
  directory = cache_dir(os.path.join("tfds", name))
  if directory is None:
    return None
  tag = hashlib.blake2b(f"{name}/{info.version}/{split}/{count}".encode(), digest_size=6).hexdigest()
  return {k: os.path.join(directory, f"{split}-{k.replace('/', '_')}-{tag}.npy") for k in keys}


def _decode_split(src, image_key: str, keys) -> Dict[str, np.ndarray]:
  """Every record's features, decoded once (the preparation pass; training reads the arrays)."""
  first = src[0]
  out = {k: np.empty((len(src), *np.shape(first[k])), np.asarray(first[k]).dtype) for k in keys}
  if out[image_key].dtype != np.uint8:
    raise DataError(f"feature {image_key}: {out[image_key].dtype} images; ae-research reads 8-bit images")
  for i in tqdm(range(len(src)), desc="decoding TFDS records (once)", unit="record", mininterval=2.0, leave=False):
    record = src[i]
    for k in keys:
      try:
        out[k][i] = record[k]
      except ValueError:
        raise DataError(f"feature {k} of record {i} has shape {np.shape(record[k])}, not {out[k].shape[1:]}: "
                        "images of varying sizes are not supported; choose a data set with one image size") from None
  return out


def read_split(name: str, split: str, data_dir: Optional[str], download: bool) -> Tuple[Dict[str, np.ndarray], object]:
  """({feature: array}, dataset info) of one split: memory-mapped from the cache, decoded on a miss."""
  src = _source(name, split, data_dir, download)
  info = src.dataset_info
  image, label, others = _features(info)
  keys = [image, *([label] if label else []), *others]
  paths = _cache_paths(name, split, info, len(src), keys)
  if paths and all(os.path.exists(p) for p in paths.values()):
    try:
      return {k: np.load(p, mmap_mode="r") for k, p in paths.items()}, info
    except (OSError, ValueError) as e:
      log.warning("TFDS cache of %s/%s is unreadable (%s); decoding again", name, split, e)
  arrays = _decode_split(src, image, keys)
  if paths:
    for k, path in paths.items():
      tmp = f"{path}.tmp.npy"
      np.save(tmp, arrays[k])
      os.replace(tmp, path)
  return arrays, info


def load_tfds_dataset(name: str, batch_size: int, scale: str = "unit", seed: int = 0, tfds_data_dir: Optional[str] = None,
                      download: bool = False, train_split: str = "train", test_split: str = "test") -> ArrayDataset:
  """The TFDS data set `name` as an `ArrayDataset` (see the module docstring)."""
  del seed  # TFDS fixes the splits.
  splits, info = {}, None
  for which, split in (("train", train_split), ("test", test_split)):
    arrays, info = read_split(name, split, tfds_data_dir, download)
    image, label, others = _features(info)
    images = arrays[image]
    if images.ndim == 3:
      images = images[..., None]
    out = {"image": ScaledImages(images, 255.0, scale)}
    out["label"] = np.asarray(arrays[label], np.int32) if label else np.zeros(len(images), np.int32)
    out.update({k: np.asarray(arrays[k]) for k in others})
    splits[which] = out
  _, label, _ = _features(info)
  names = tuple(info.features[label].names) if label else None
  return ArrayDataset(name=name, train=splits["train"], test=splits["test"], batch_size=batch_size, scale=scale,
                      label_kind="class" if label else "source", class_names=names)
