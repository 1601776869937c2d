"""Weights & Biases writer. Any W&B failure is reported once and then ignored: the local
outputs (metrics.jsonl, summary.json, figures, checkpoints) never depend on it."""
import logging
import netrc
import os
import secrets
from typing import Any, Mapping, Optional, Sequence

from ae_research.errors import ConfigError
from ae_research.writers.base import MetricWriter

MODES = ("auto", "online", "offline", "disabled")
_RUN_ID_FILE = "wandb_run_id.txt"
log = logging.getLogger(__name__)


def resolve_mode(mode: str) -> str:
  """"auto" means online when an API key is configured, else offline (no network needed)."""
  if mode not in MODES:
    raise ConfigError(f"logger.wandb.mode={mode!r}: choose one of {', '.join(MODES)}")
  if mode == "online" and not _has_api_key():
    raise ConfigError("logger.wandb.mode=online but no W&B API key is configured (WANDB_API_KEY or ~/.netrc); "
                      "run `wandb login`, or use mode=offline (or auto) and `wandb sync` the run later")
  if mode != "auto":
    return mode
  if os.environ.get("WANDB_MODE") in MODES[1:]:
    return os.environ["WANDB_MODE"]
  return "online" if _has_api_key() else "offline"


def _has_api_key() -> bool:
  if os.environ.get("WANDB_API_KEY"):
    return True
  try:
    return netrc.netrc().authenticators("api.wandb.ai") is not None
  except (OSError, netrc.NetrcParseError):
    return False


class WandbWriter(MetricWriter):
  """One W&B run per run directory; a resumed run continues the same W&B run id."""

  def __init__(self, workdir: str, config: Mapping[str, Any], mode: str, project: str,
               entity: Optional[str] = None, group: Optional[str] = None, tags: Sequence[str] = (),
               job_type: str = "train", name: Optional[str] = None):
    self._run = None
    try:
      import wandb  # pylint: disable=g-import-not-at-top  (0.8 s import; skipped when disabled)
      self._wandb = wandb
      id_path = os.path.join(workdir, _RUN_ID_FILE)
      run_id = open(id_path).read().strip() if os.path.exists(id_path) else secrets.token_hex(4)
      if os.environ.get("WANDB_SWEEP_ID") and os.environ.get("WANDB_RUN_ID"):  # Started by `wandb agent`.
        run_id = os.environ["WANDB_RUN_ID"]
      self._run = wandb.init(project=project, entity=entity, group=group, tags=list(tags), job_type=job_type,
                             name=name, id=run_id, resume="allow", dir=workdir, mode=mode,
                             config=dict(config), reinit="create_new",
                             settings=wandb.Settings(init_timeout=60, silent=True))
      with open(id_path, "w") as f:
        f.write(run_id)
    except Exception as e:  # W&B must never stop training or cost local outputs.
      self._fail("init", e)

  def _fail(self, what: str, error: Exception) -> None:
    log.warning("W&B %s failed (%s); continuing with local logging only (logger.wandb.mode=disabled "
                "silences this)", what, str(error).splitlines()[0] if str(error) else type(error).__name__)
    self._run = None

  def _call(self, what: str, fn) -> None:
    if self._run is None:
      return
    try:
      fn()
    except Exception as e:  # pylint: disable=broad-except
      self._fail(what, e)

  def write_scalars(self, step, scalars):
    self._call("log", lambda: self._run.log(dict(scalars), step=int(step)))

  def write_images(self, step, images):
    self._call("image log", lambda: self._run.log(
        {f"figures/{k}": self._wandb.Image(path) for k, path in images.items()}, step=int(step)))

  def write_summary(self, summary):
    self._call("summary", lambda: self._run.summary.update(dict(summary)))

  def close(self):
    self._call("finish", lambda: self._run.finish())
