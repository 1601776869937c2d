"""User-facing errors: each carries one line that says what is wrong and how to fix it.

The CLI prints these without a traceback (see `ae_research.train.main`); anything else
is a bug and keeps its traceback.
"""
import errno
from typing import Optional

# A write the environment refused: a full disk or quota, a read-only file system, no permission, an I/O error.
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ENOTDIR)


class UserError(Exception):
  """Base class for errors caused by the user's config, data or environment."""


class ConfigError(UserError):
  """The composed config is invalid (unknown key, wrong type, bad value)."""


class DataError(UserError):
  """A data set is missing, truncated or corrupt."""


class NonFiniteLossError(UserError):
  """Training produced a NaN or infinite loss."""


class CheckpointError(UserError):
  """A checkpoint cannot be restored into the current configuration, or none is intact."""


class RunInUseError(UserError):
  """Another live process holds the run directory's lock."""


class OutputError(UserError):
  """A file of the run cannot be written (disk full, read-only file system, no permission)."""


class Interrupted(UserError):
  """SIGTERM/SIGINT: the run stopped at a chunk boundary after writing a checkpoint."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.exit_code = 128 + signum  # The shell's convention for "killed by signal N".


def write_error(e: Optional[BaseException]) -> Optional[OSError]:
  """The OSError of a refused write (see WRITE_ERRNOS) that `e` is or was raised from, else None (a bug)."""
  for _ in range(10):  # Libraries (orbax) wrap I/O errors in their own types.
    if e is None:
      return None
    if isinstance(e, OSError) and e.errno in WRITE_ERRNOS:
      return e
    e = e.__cause__ or e.__context__
  return None
