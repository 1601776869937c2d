"""Weights & Biases writer. Any W&B failure is reported once and then ignored: the local
outputs (metrics.jsonl, summary.json, figures, checkpoints) never depend on it."""
import logging
import netrc
import os
import queue
import secrets
import threading
from typing import Any, Dict, Mapping, Optional, Sequence

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
  """One W&B run per run directory; a resumed run continues the same W&B run id.

  Every W&B call runs on one background thread, in order: its start-up (importing wandb and
  starting its service process, 1-2 s) overlaps compilation and training, and a slow or
  unreachable server never stalls the training loop. `flush` and `close` wait for the calls
  queued before them.
  """

  def __init__(self, workdir: str, config: Mapping[str, Any], mode: str, project: str,
               entity: Optional[str] = None, group: Optional[str] = None, tags: Sequence[str] = (),
               job_type: str = "train", name: Optional[str] = None):
    self._run, self._wandb, self._failed = None, None, False
    self._exit_code = 0  # 1 once `mark_failed`: the dashboard then shows the run as failed.
    self._calls: "queue.Queue" = queue.Queue()
    self._thread = threading.Thread(target=self._work, name="wandb-writer", daemon=True)
    self._thread.start()
    init = dict(project=project, entity=entity, group=group, tags=list(tags), job_type=job_type, name=name,
                mode=mode, config=dict(config))
    self._calls.put(("init", lambda: self._init(workdir, init)))

  def _init(self, workdir: str, init: Dict[str, Any]) -> None:
    import wandb  # pylint: disable=g-import-not-at-top  (0.8 s import; skipped when disabled)
    self._wandb = wandb
    id_path = os.path.join(workdir, _RUN_ID_FILE)
    run_id = open(id_path).read().strip() if os.path.exists(id_path) else secrets.token_hex(4)
    if os.environ.get("WANDB_SWEEP_ID") and os.environ.get("WANDB_RUN_ID"):  # Started by `wandb agent`.
      run_id = os.environ["WANDB_RUN_ID"]
    self._run = wandb.init(**init, id=run_id, resume="allow", dir=workdir, reinit="create_new",
                           settings=wandb.Settings(init_timeout=60, silent=True))
    with open(id_path, "w") as f:
      f.write(run_id)

  def _work(self) -> None:
    while True:
      what, fn = self._calls.get()
      try:
        if fn is not None and not self._failed and (what == "init" or self._run is not None):
          fn()
      except Exception as e:  # W&B must never stop training or cost local outputs.
        log.warning("W&B %s failed (%s); continuing with local logging only (logger.wandb.mode=disabled "
                    "silences this)", what, str(e).splitlines()[0] if str(e) else type(e).__name__)
        self._failed = True
      finally:
        self._calls.task_done()
      if what == "stop":
        return

  def write_scalars(self, step, scalars):
    self._calls.put(("log", lambda: self._run.log(dict(scalars), step=int(step))))

  def write_images(self, step, images):
    self._calls.put(("image log", lambda: self._run.log(
        {f"figures/{k}": self._wandb.Image(path) for k, path in images.items()}, step=int(step))))

  def write_summary(self, summary):
    self._calls.put(("summary", lambda: self._run.summary.update(dict(summary))))

  def mark_failed(self, reason):
    self._exit_code = 1
    self._calls.put(("summary", lambda: self._run.summary.update({"status": "failed", "error": reason})))

  def flush(self):
    self._calls.join()

  def close(self):
    code = self._exit_code
    self._calls.put(("finish", lambda: self._run.finish(exit_code=code)))
    self._calls.put(("stop", None))
    self._thread.join()
