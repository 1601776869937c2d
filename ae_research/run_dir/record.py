"""What a run directory records of its config, so that nothing reuses or continues it under another.

* `config.yaml`: the resolved config the run started with; a resume never rewrites it.
* `fingerprint.json`: the config as last asked for (flat), and its fingerprint (`fingerprint.py`).
* `resumes.jsonl`: one line per resume: when, from which step, and which keys changed (old, new).

A finished run is reused only when its fingerprint matches; a resume is refused when an identity
key changed (model, data, seed, loss, the optimiser's structure); both refusals come before any
file is written. `AE_ALLOW_CONFIG_CHANGE=1` lets a resume through anyway (the change is recorded).
"""
import datetime
import json
import os
from typing import Any, Dict, Mapping, Optional

from omegaconf import DictConfig, OmegaConf

from ae_research.config.flatten import MISSING_VALUE, flatten_config
from ae_research.errors import ConfigError, OutputError
from ae_research.run_dir import fingerprint as fp
from ae_research.run_dir import hydra_files

RECORD_FILE = "fingerprint.json"
HISTORY_FILE = "resumes.jsonl"
CONFIG_FILE = "config.yaml"
ALLOW_ENV = "AE_ALLOW_CONFIG_CHANGE"


def allowed() -> bool:
  """Whether the user asked, with AE_ALLOW_CONFIG_CHANGE=1, to resume whatever the config change."""
  return os.environ.get(ALLOW_ENV, "") not in ("", "0", "false")


def has_checkpoint(workdir: str) -> bool:
  """Whether `workdir/checkpoints` holds a finished checkpoint (a step directory; no orbax needed)."""
  try:
    return any(name.isdigit() for name in os.listdir(os.path.join(workdir, "checkpoints")))
  except OSError:
    return False


def holds_run(workdir: str) -> bool:
  """Whether `workdir` holds (part of) a run: its records or a checkpoint."""
  return has_checkpoint(workdir) or any(os.path.exists(os.path.join(workdir, name))
                                        for name in (RECORD_FILE, CONFIG_FILE, "summary.json"))


def stored_config(workdir: str) -> Optional[Dict[str, Any]]:
  """The flat config the run was last asked to train (None: no run there, or one without a readable record)."""
  try:
    with open(os.path.join(workdir, RECORD_FILE)) as f:
      return json.load(f)["config"]
  except (OSError, ValueError, KeyError, TypeError):
    pass
  path = os.path.join(workdir, CONFIG_FILE)  # Runs written before fingerprint.json existed.
  try:
    return flatten_config(OmegaConf.to_container(OmegaConf.load(path))) if os.path.exists(path) else None
  except Exception:  # pylint: disable=broad-except  (an unreadable config.yaml: nothing to compare with)
    return None


def config_changes(workdir: str, cfg: Any) -> Dict[str, fp.Change]:
  """{key: (recorded value, `cfg`'s value)} of every changed key ({} when nothing is recorded)."""
  stored = stored_config(workdir)
  return {} if stored is None else fp.changes(stored, flatten_config(cfg))


def check_resume(workdir: str, cfg: Any) -> None:
  """Refuses (`ConfigError`) to resume the run in `workdir` with a `cfg` that changes what it trains."""
  bad = fp.of_kind(config_changes(workdir, cfg), "identity")
  if bad and not allowed():
    raise ConfigError(f"{workdir}: trainer.resume=true with a changed config ({fp.describe(bad)}); a resumed run "
                      "keeps its model, data, seed, loss and optimiser: choose a new hydra.run.dir, or set "
                      f"{ALLOW_ENV}=1 to resume it anyway (recorded in {HISTORY_FILE})")


def check_finished(workdir: str, cfg: Any, summary: Mapping[str, Any]) -> bool:
  """Whether the finished run (its `summary`) may be reused for `cfg`; refuses when its fingerprint differs."""
  diff = fp.of_kind(config_changes(workdir, cfg), "identity", "resumable")
  if not diff:
    return True
  if allowed():
    return False  # Resumed (and evaluated) under the new config, as asked.
  done = f"trainer.epochs above {summary.get('epoch')}" if summary.get("epoch") is not None else "trainer.epochs"
  fix = (f"or raise {done} to continue it with these values" if not fp.of_kind(diff, "identity") else
         f"or set {ALLOW_ENV}=1 to resume it anyway (recorded in {HISTORY_FILE})")
  raise ConfigError(f"{workdir} already holds a finished run of a different config ({fp.describe(diff)}); choose a "
                    f"new hydra.run.dir (hydra.sweep.dir for a sweep), {fix}")


def _write(path: str, text: str) -> None:
  tmp = path + ".tmp"
  try:
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, path)
  except OSError as e:
    raise OutputError(f"cannot write {path} ({e.strerror}); free space or fix the directory's permissions, "
                      "then run again") from None


def record_start(workdir: str, trained: DictConfig, requested: DictConfig, resumed_step: Optional[int]) -> None:
  """Writes the records of a run that starts (`resumed_step` None) or resumes from `resumed_step`.

  `trained` is the config the run trains with (config.yaml); `requested` the one it was asked for
  (the same, but for greedy pre-training, which points `trainer.init_from` at its last stage).
  """
  flat = flatten_config(requested)
  history = os.path.join(workdir, HISTORY_FILE)
  if resumed_step is None or not os.path.exists(os.path.join(workdir, CONFIG_FILE)):
    _write(os.path.join(workdir, CONFIG_FILE), OmegaConf.to_yaml(trained, resolve=True))
  if resumed_step is None:
    if os.path.exists(history):  # The attempt it had left no checkpoint: its resumes never happened.
      os.remove(history)
  else:
    stored = stored_config(workdir)
    changed = fp.changes(stored, flat) if stored is not None else {}
    entry = {"time": datetime.datetime.now().isoformat(timespec="seconds"), "step": resumed_step,
             "changed": {k: list(v) for k, v in changed.items()}}
    if fp.of_kind(changed, "identity"):
      entry["allowed_by"] = f"{ALLOW_ENV}=1"
    try:
      with open(history, "a") as f:
        f.write(json.dumps(entry, default=str) + "\n")
    except OSError as e:
      raise OutputError(f"cannot write {history} ({e.strerror}); free space, then resume again") from None
  _write(os.path.join(workdir, RECORD_FILE),
         json.dumps({"fingerprint": fp.fingerprint(flat), "config": flat}, indent=1, sort_keys=True, default=str))
  hydra_files.write_deferred(workdir)  # The CLI's `.hydra/`, held back until the run was accepted.


def history(workdir: str):
  """The run's resume records, oldest first ([] for a run never resumed)."""
  path = os.path.join(workdir, HISTORY_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def effective_config(workdir: str) -> DictConfig:
  """config.yaml with the changes of every resume applied: the config the run's checkpoint was trained under."""
  cfg = OmegaConf.load(os.path.join(workdir, CONFIG_FILE))
  for entry in history(workdir):
    for key, (_, new) in entry.get("changed", {}).items():
      if new == MISSING_VALUE:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if isinstance(node, DictConfig) and leaf in node:
          del node[leaf]
      else:
        OmegaConf.update(cfg, key, new, force_add=True)
  return cfg
