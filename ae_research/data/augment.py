"""Per-batch augmentation inside the compiled step: random crops (after zero padding) and horizontal flips.

Each example draws its own crop offset and flip from the step's key, so an augmented run is as exactly
reproducible and resumable as any other. Paired targets of the image's size (colour for grey) move with
their image; evaluation never augments.
"""
import dataclasses
from typing import Dict

import jax
import jax.numpy as jnp

from ae_research.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Augment:
  """`crop_padding`: pad each side by this many pixels, then crop back to the image size at a uniform
  random offset (0: no crop); `horizontal_flip`: mirror each example left-right with probability 1/2."""
  crop_padding: int = 0
  horizontal_flip: bool = False

  def __post_init__(self):
    if self.crop_padding < 0:
      raise ConfigError(f"dataset.augment.crop_padding={self.crop_padding}: must be >= 0")

  @property
  def active(self) -> bool:
    return self.crop_padding > 0 or self.horizontal_flip

  def check(self, image_shape, target_shape) -> None:
    if len(image_shape) != 3:
      raise ConfigError(f"dataset.augment: crops and flips need (height, width, channels) images, got {image_shape}")
    if tuple(target_shape[:2]) != tuple(image_shape[:2]):
      raise ConfigError(f"dataset.augment: the paired targets {target_shape} are not the images' size "
                        f"{image_shape}, so they cannot be cropped and flipped with them; drop dataset.augment")

  def __call__(self, rng: jax.Array, batch: Dict[str, jax.Array]) -> Dict[str, jax.Array]:
    keys = [k for k in ("image", "target") if k in batch]
    n, h, w = batch["image"].shape[:3]
    crop_key, flip_key = jax.random.split(rng)
    out = dict(batch)
    if self.crop_padding > 0:
      p = self.crop_padding
      offsets = jax.random.randint(crop_key, (n, 2), 0, 2 * p + 1)

      def crop(x, offset):
        padded = jnp.pad(x, ((p, p), (p, p), (0, 0)))
        return jax.lax.dynamic_slice(padded, (offset[0], offset[1], 0), (h, w, x.shape[-1]))

      for k in keys:
        out[k] = jax.vmap(crop)(out[k], offsets)
    if self.horizontal_flip:
      flip = jax.random.bernoulli(flip_key, 0.5, (n,))[:, None, None, None]
      for k in keys:
        out[k] = jnp.where(flip, out[k][:, :, ::-1], out[k])
    return out
