"""Data sets cut from natural photographs (by default scikit-learn's two sample photos).

`photo_patches` (SPEC 4, the UFLDL sparse-autoencoder exercise): random 8x8 patches,
grey or colour, whitened, then normalised as UFLDL's `sampleIMAGES`: remove each patch's
mean, truncate to +-3 standard deviations, rescale to [0.1, 0.9] (so sigmoid outputs can
reach them). Whitening is `olshausen` (what UFLDL's IMAGES.mat is: each whole photograph
filtered in the Fourier domain by R(f) = f exp(-(f/f0)^4), Olshausen & Field 1997, which
flattens the 1/f amplitude spectrum of natural images), `zca` (fitted on the training
patches) or `none`.

`photo_colorize` (SPEC 5): random crops, grey input -> colour target.

Train and test patches are drawn at independent random positions (different seeds), so
they may overlap spatially: with two photographs there is no held-out image.
"""
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from ae_research.data.dataset import ArrayDataset
from ae_research.data.sklearn_data import shipped_file
from ae_research.errors import ConfigError, DataError

_GREY = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma.


SAMPLE_PHOTOS = ("china.jpg", "flower.jpg")  # What `sklearn.datasets.load_sample_images` reads, in its order.


def sample_photos() -> list:
  """scikit-learn's two sample photographs as uint8 RGB arrays, read as `load_sample_images` reads them."""
  paths = [shipped_file("datasets", "images", name) for name in SAMPLE_PHOTOS]
  if not all(paths):
    import sklearn.datasets  # pylint: disable=g-import-not-at-top  (a scikit-learn that keeps them elsewhere)
    return list(sklearn.datasets.load_sample_images().images)
  images = []
  for path in paths:
    with open(path, "rb") as f:
      images.append(np.asarray(Image.open(f)))
  return images


def load_photos(paths: Optional[Sequence[str]] = None, downscale: int = 1) -> list:
  """Float32 RGB images in [0, 1]; scikit-learn's sample photographs when `paths` is None."""
  if paths:
    try:
      images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    except OSError as e:
      raise DataError(f"dataset.paths: cannot read {e.filename or e}; give readable image files") from None
  else:
    images = sample_photos()
  if downscale > 1:
    images = [np.asarray(Image.fromarray(im).reduce(downscale)) for im in images]
  return [im.astype(np.float32) / 255.0 for im in images]


def random_crops(images: list, size: int, count: int, seed: int) -> tuple:
  """(count, size, size, C) crops at uniform random positions, and the source image index."""
  rng = np.random.default_rng(seed)
  source = rng.integers(0, len(images), count)
  crops = np.empty((count, size, size, images[0].shape[-1]), np.float32)
  for i, s in enumerate(source):
    h, w = images[s].shape[:2]
    if h < size or w < size:
      raise ConfigError(f"dataset: crop size {size} exceeds a {h}x{w} photograph; use a smaller patch_size")
    top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    crops[i] = images[s][top:top + size, left:left + size]
  return crops, source.astype(np.int32)


WHITENING = ("olshausen", "zca", "none")


def olshausen_whiten(image: np.ndarray, f0: float = 0.4) -> np.ndarray:
  """A grey image whitened by R(f) = f exp(-(f/f0)^4), f in cycles/pixel (UFLDL's IMAGES.mat), unit variance."""
  fy, fx = np.fft.fftfreq(image.shape[0])[:, None], np.fft.fftfreq(image.shape[1])[None, :]
  f = np.sqrt(fx ** 2 + fy ** 2)
  whitened = np.real(np.fft.ifft2(np.fft.fft2(image - image.mean()) * f * np.exp(-(f / f0) ** 4)))
  return (whitened / whitened.std()).astype(np.float32)


def zca_matrix(patches: np.ndarray, epsilon: float) -> np.ndarray:
  """ZCA whitening matrix of (N, D) patches (already mean-removed)."""
  cov = patches.T @ patches / len(patches)
  eigval, eigvec = np.linalg.eigh(cov)
  return (eigvec / np.sqrt(eigval + epsilon)) @ eigvec.T


def ufldl_normalize(patches: np.ndarray) -> np.ndarray:
  """Remove the patch mean, truncate to +-3 std, rescale to [0.1, 0.9] (UFLDL sampleIMAGES)."""
  patches = patches - patches.mean(axis=1, keepdims=True)
  limit = 3 * patches.std()
  return (np.clip(patches, -limit, limit) / limit + 1) * 0.4 + 0.1


def load_photo_patches(name: str, batch_size: int, scale: str = "unit", seed: int = 0, patch_size: int = 8,
                       num_train: int = 10_000, num_test: int = 2_000, grey: bool = True, whiten: str = "olshausen",
                       zca_epsilon: float = 0.01, olshausen_f0: float = 0.4, downscale: int = 1,
                       paths: Optional[Sequence[str]] = None) -> ArrayDataset:
  """Natural-image patches, (N, patch, patch, 1 or 3), values in [0.1, 0.9]."""
  del scale  # UFLDL normalisation fixes the range.
  if whiten not in WHITENING:
    raise ConfigError(f"dataset.whiten={whiten!r}: choose one of {', '.join(WHITENING)}")
  if whiten == "olshausen" and not grey:
    raise ConfigError("dataset.whiten=olshausen whitens grey photographs; set dataset.grey=true or use zca")
  photos = load_photos(paths, downscale)
  if grey:
    photos = [im @ _GREY for im in photos]
    photos = [olshausen_whiten(im, olshausen_f0) if whiten == "olshausen" else im for im in photos]
    photos = [im[..., None] for im in photos]
  splits = []
  for count, split_seed in ((num_train, seed), (num_test, seed + 10_007)):
    crops, source = random_crops(photos, patch_size, count, split_seed)
    splits.append((crops.reshape(count, -1), source))
  (train, train_src), (test, test_src) = splits
  if whiten == "zca":
    mean = train.mean(axis=0)
    zca = zca_matrix(train - mean, zca_epsilon)
    train, test = (train - mean) @ zca, (test - mean) @ zca
  shape = (patch_size, patch_size, 1 if grey else 3)
  return ArrayDataset(
      name=name, batch_size=batch_size, label_name="photo", label_kind="source", scale="unit",
      train={"image": ufldl_normalize(train).reshape(-1, *shape).astype(np.float32), "label": train_src},
      test={"image": ufldl_normalize(test).reshape(-1, *shape).astype(np.float32), "label": test_src})


def load_photo_colorize(name: str, batch_size: int, scale: str = "unit", seed: int = 0, size: int = 48,
                        num_train: int = 4_000, num_test: int = 500, downscale: int = 2,
                        paths: Optional[Sequence[str]] = None) -> ArrayDataset:
  """Grey crops ("image", (N, size, size, 1)) and their colour originals ("target", (..., 3)) in [0, 1]."""
  if scale != "unit":
    raise ConfigError("dataset.scale: colourisation targets are colours in [0, 1]; use scale=unit")
  photos = load_photos(paths, downscale)
  out = []
  for count, split_seed in ((num_train, seed), (num_test, seed + 10_007)):
    colour, source = random_crops(photos, size, count, split_seed)
    out.append({"image": (colour @ _GREY)[..., None], "target": colour, "label": source})
  return ArrayDataset(name=name, batch_size=batch_size, train=out[0], test=out[1], label_name="photo", label_kind="source",
                      scale=scale)
