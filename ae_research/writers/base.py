"""The writer interface (after CLU's metric_writers): the trainer talks only to this."""
import abc
from typing import Any, Mapping, Sequence


class MetricWriter(abc.ABC):
  """Receives scalars, images (PNG paths) and the final summary (W&B gets the config at start)."""

  @abc.abstractmethod
  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """One record: a logging point or an epoch end; `scalars` holds "epoch" too."""

  def write_images(self, step: int, images: Mapping[str, str]) -> None:
    """`images` maps a name to a PNG file path already on disk."""

  def write_summary(self, summary: Mapping[str, Any]) -> None:
    pass

  def mark_failed(self, reason: str) -> None:
    """The run stopped with the user error `reason` (one line): W&B shows it as failed, with the reason."""

  def flush(self) -> None:
    pass

  def close(self) -> None:
    pass


class MultiWriter(MetricWriter):
  """Fans every call out to several writers."""

  def __init__(self, writers: Sequence[MetricWriter]):
    self.writers = list(writers)

  def write_scalars(self, step, scalars):
    for w in self.writers:
      w.write_scalars(step, scalars)

  def write_images(self, step, images):
    for w in self.writers:
      w.write_images(step, images)

  def write_summary(self, summary):
    for w in self.writers:
      w.write_summary(summary)

  def mark_failed(self, reason):
    for w in self.writers:
      w.mark_failed(reason)

  def flush(self):
    for w in self.writers:
      w.flush()

  def close(self):
    for w in self.writers:
      w.close()


class NullWriter(MetricWriter):
  """What processes other than 0 get: they compute but never write."""

  def write_scalars(self, step, scalars):
    pass
