"""The in-memory data set every loader returns and the trainer places on device."""
import dataclasses
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from ae_research.errors import ConfigError, DataError

SCALES = ("unit", "centered")
LABEL_KINDS = ("class", "ordinal", "source", "factors")
DIGIT_NAMES = tuple(str(d) for d in range(10))


@dataclasses.dataclass(frozen=True)
class ArrayDataset:
  """Train and test splits as arrays: small data sets live whole on the device.

  Each split maps "image" -> float32 (N, H, W, C) (a `storage.ScaledImages` for 8-bit data kept as
  bytes), "label" -> int32 (N,), and, for paired tasks such as colourisation, "target" -> float32
  (N, H', W', C'); data with ground-truth factors add "factors" -> int32 (N, K). Any other key
  travels with the batch too.

  What the label means is declared: `label_kind` "class" (categories, named by
  `class_names`: probes, retrieval and class-coloured plots apply), "ordinal" (a quantity
  such as a block's height: k-NN regression from the codes applies), "source" (where an
  example came from; plots only) or "factors" (the label is one of the ground-truth factors,
  `factor_names`/`factor_sizes`; `ground_truth` samples factors and renders their images, as the
  disentanglement metrics need). `label_name` names it in metrics and figures.
  """
  name: str
  train: Dict[str, np.ndarray]
  test: Dict[str, np.ndarray]
  batch_size: int
  label_name: str = "class"
  scale: str = "unit"
  label_kind: str = "class"
  class_names: Optional[Sequence[str]] = None
  factor_names: Optional[Sequence[str]] = None
  factor_sizes: Optional[Sequence[int]] = None
  ground_truth: Any = None  # A ground-truth sampler (metrics/ground_truth.py) when the factors form a grid.

  def __post_init__(self):
    if self.label_kind not in LABEL_KINDS:
      raise ValueError(f"label_kind={self.label_kind!r}: one of {LABEL_KINDS}")
    if self.class_names is not None:
      for split, arrays in (("train", self.train), ("test", self.test)):
        labels = np.asarray(arrays["label"])
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
          raise DataError(f"{self.name}: {split} labels span {labels.min()}..{labels.max()}, outside the "
                          f"{len(self.class_names)} classes 0..{len(self.class_names) - 1}; the label file is corrupt "
                          "or belongs to another data set")
    if self.batch_size <= 0:
      raise ConfigError(f"dataset.batch_size={self.batch_size}: must be a positive integer")
    if self.batch_size > self.num_train:
      raise ConfigError(f"dataset.batch_size={self.batch_size} exceeds the {self.num_train} training "
                        f"examples of {self.name}; choose a smaller batch size")

  @property
  def labels_are_classes(self) -> bool:
    return self.label_kind == "class"

  @property
  def has_factors(self) -> bool:
    return "factors" in self.train and self.factor_sizes is not None

  @property
  def has_paired_targets(self) -> bool:
    """Whether examples carry their own "target" (e.g. colour for grey input) instead of reproducing the input."""
    return "target" in self.train

  def class_name(self, label: int) -> str:
    return str(self.class_names[label]) if self.class_names is not None else str(label)

  @property
  def num_classes(self) -> int:
    if self.class_names is not None:
      return len(self.class_names)
    return int(max(self.train["label"].max(), self.test["label"].max())) + 1

  def labelled_subset(self, count: int, per_class: bool = True, seed: int = 0) -> "ArrayDataset":
    """The same data set with only `count` labelled training examples: `count / num_classes` of each
    class (per_class), else the first `count` of one shuffle; drawn from `seed` alone, so every run
    asking for the same subset trains on the same examples. The test split is untouched."""
    if not self.labels_are_classes:
      raise ConfigError(f"task.labelled: {self.name} has no class labels to subsample")
    if not 0 < count <= self.num_train:
      raise ConfigError(f"task.labelled={count}: choose 1..{self.num_train} (the training examples of {self.name})")
    rng = np.random.default_rng(seed)
    labels = self.train["label"]
    if per_class:
      if count % self.num_classes:
        raise ConfigError(f"task.labelled={count} with labelled_per_class: use a multiple of the "
                          f"{self.num_classes} classes")
      rows = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:count // self.num_classes]
                             for c in range(self.num_classes)])
      if len(rows) != count:
        raise ConfigError(f"task.labelled={count}: some class has fewer than {count // self.num_classes} examples")
    else:
      rows = rng.permutation(self.num_train)[:count]
    rows = np.sort(rows)
    return dataclasses.replace(self, train={k: v[rows] for k, v in self.train.items()},
                               batch_size=min(self.batch_size, count))

  @property
  def image_shape(self) -> Tuple[int, ...]:
    return tuple(self.train["image"].shape[1:])

  @property
  def target_shape(self) -> Tuple[int, ...]:
    return tuple(self.train.get("target", self.train["image"]).shape[1:])

  @property
  def num_train(self) -> int:
    return len(self.train["image"])

  @property
  def num_test(self) -> int:
    return len(self.test["image"])

  @property
  def value_range(self) -> Tuple[float, float]:
    return (-0.5, 0.5) if self.scale == "centered" else (0.0, 1.0)


def check_scale(scale: str) -> None:
  if scale not in SCALES:
    raise ConfigError(f"dataset.scale={scale!r}: must be one of {', '.join(SCALES)}")


def scale_pixels(pixels: np.ndarray, scale: str, max_value: float = 255.0) -> np.ndarray:
  """Maps raw pixel values in [0, max_value] to [0, 1] ("unit") or [-0.5, 0.5] ("centered")."""
  check_scale(scale)
  x = pixels.astype(np.float32)
  np.divide(x, np.float32(max_value), out=x)  # In place: 4x faster than new arrays on 60k images.
  if scale == "centered":
    np.subtract(x, np.float32(0.5), out=x)
  return x


def with_channel_axis(images: np.ndarray) -> np.ndarray:
  return images[..., None] if images.ndim == 3 else images


def split_arrays(images: np.ndarray, labels: np.ndarray, num_train: int,
                 target: Optional[np.ndarray] = None) -> Tuple[Dict, Dict]:
  train = {"image": images[:num_train], "label": labels[:num_train].astype(np.int32)}
  test = {"image": images[num_train:], "label": labels[num_train:].astype(np.int32)}
  if target is not None:
    train["target"], test["target"] = target[:num_train], target[num_train:]
  return train, test
