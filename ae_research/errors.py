"""User-facing errors: each carries one line that says what is wrong and how to fix it.

The CLI prints these without a traceback (see `ae_research.train.main`); anything else
is a bug and keeps its traceback.
"""


class UserError(Exception):
  """Base class for errors caused by the user's config, data or environment."""


class ConfigError(UserError):
  """The composed config is invalid (unknown key, wrong type, bad value)."""


class DataError(UserError):
  """A data set is missing, truncated or corrupt."""


class NonFiniteLossError(UserError):
  """Training produced a NaN or infinite loss."""


class CheckpointError(UserError):
  """A checkpoint cannot be restored into the current configuration."""


class Interrupted(UserError):
  """SIGTERM/SIGINT: the run stopped at a chunk boundary after writing a checkpoint."""

  def __init__(self, message: str, signum: int):
    super().__init__(message)
    self.exit_code = 128 + signum  # The shell's convention for "killed by signal N".
