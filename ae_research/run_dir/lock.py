"""One process per run directory: an exclusive lock file, `<run dir>/.lock`.

Two processes writing one run directory interleave metrics.jsonl and race on checkpoints,
and a later resume then reports wrong numbers without any error; so a run holds this lock
from before it reads the directory until it ends. The file names its owner (pid, host, start
time, command) for the message the second process prints. It is taken atomically with
`flock` (which the kernel also releases when its owner dies, `kill -9` included); a file left
by a dead process on this host is taken over with a warning, one from another host (a shared
file system) is never presumed dead. Re-entrant within a process: the CLI takes it before
writing `.hydra/`, and the trainer takes it again for the same directory.
"""
import contextlib
import datetime
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from typing import Dict, Iterator, Optional

from ae_research.errors import ConfigError, RunInUseError

LOCK_FILE = ".lock"
log = logging.getLogger("ae_research")
_held: Dict[str, list] = {}  # Real path of a locked run directory -> [fd, hold count].


def _owner(fd: int) -> Optional[dict]:
  """The lock file's owner record, or None (empty: a fresh file, or one whose owner is still writing it)."""
  try:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode(errors="replace").strip()
    return json.loads(text) if text else None
  except (OSError, ValueError):
    return None


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # Someone else's live process.
  return True


def _refuse(workdir: str, owner: Optional[dict]) -> RunInUseError:
  if not owner:
    return RunInUseError(f"{workdir} is in use by another process that is starting up; wait for it to end, or "
                         "choose another hydra.run.dir")
  where = "this host" if owner.get("host") == socket.gethostname() else f"host {owner.get('host')}"
  hint = (f"wait for it to end or stop it (kill {owner.get('pid')})" if where == "this host" else
          f"wait for it to end; if that process is gone, delete {os.path.join(workdir, LOCK_FILE)}")
  return RunInUseError(f"{workdir} is in use by pid {owner.get('pid')} on {where} (since {owner.get('started')}); "
                       f"{hint}, or choose another hydra.run.dir")


def acquire(workdir: str) -> str:
  """Locks `workdir` (created if missing) for this process; returns its real path (the key to `release`).

  Raises `RunInUseError` when a live process holds it, `ConfigError` when the directory cannot be written.
  """
  os_dir = os.path.abspath(workdir)
  try:
    os.makedirs(os_dir, exist_ok=True)
  except OSError as e:
    raise ConfigError(f"cannot write to the run directory {os_dir} ({e.strerror}); choose a writable "
                      "hydra.run.dir") from None
  key = os.path.realpath(os_dir)
  if key in _held:
    _held[key][1] += 1
    return key
  path = os.path.join(key, LOCK_FILE)
  for _ in range(20):
    try:
      fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise ConfigError(f"cannot write to the run directory {os_dir} ({e.strerror}); choose a writable "
                        "hydra.run.dir") from None
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      owner = None
      for _ in range(20):  # The holder may have created the file but not yet written its name.
        owner = _owner(fd)
        if owner:
          break
        time.sleep(0.05)
      os.close(fd)
      raise _refuse(os_dir, owner) from None
    except OSError as e:
      if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
        os.close(fd)
        raise
      # No flock on this file system: the owner record below is all there is.
    try:  # Its releasing owner may have deleted the file between our open and our flock: lock the new one.
      same = os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
      same = False
    if not same:
      os.close(fd)
      continue
    owner = _owner(fd)
    if owner and owner.get("pid") != os.getpid():
      if owner.get("host") != socket.gethostname() or _alive(int(owner.get("pid", 0))):
        os.close(fd)
        raise _refuse(os_dir, owner)
      log.warning("%s: took over the lock left by pid %s (started %s), which is no longer running", os_dir,
                  owner.get("pid"), owner.get("started"))
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": datetime.datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv)[:300]}
    try:
      os.ftruncate(fd, 0)
      os.lseek(fd, 0, os.SEEK_SET)
      os.write(fd, (json.dumps(record) + "\n").encode())
    except OSError as e:
      os.close(fd)
      raise ConfigError(f"cannot write to the run directory {os_dir} ({e.strerror}); free space or choose a "
                        "writable hydra.run.dir") from None
    _held[key] = [fd, 1]
    return key
  raise RunInUseError(f"{os_dir}: its lock file keeps changing; another process is starting and stopping runs "
                      "there; choose another hydra.run.dir")


def release(key: str) -> None:
  """Drops one hold of the lock `acquire` returned; the last removes the lock file."""
  entry = _held.get(key)
  if entry is None:
    return
  entry[1] -= 1
  if entry[1] > 0:
    return
  del _held[key]
  try:  # Removed while still locked, so no process can lock the old file after we let go.
    os.unlink(os.path.join(key, LOCK_FILE))
  except OSError:
    pass  # Gone already, or a read-only directory: the next owner takes it over as stale.
  os.close(entry[0])


@contextlib.contextmanager
def hold(workdir: str) -> Iterator[str]:
  """`with hold(workdir):` the directory is this process's for the block."""
  key = acquire(workdir)
  try:
    yield key
  finally:
    release(key)
