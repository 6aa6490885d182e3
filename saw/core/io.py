"""Files written by runs, atomically or append-only, without torch: run directories stay readable
by the evaluation and table code (``eval/``) on a machine without the training stack."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import socket
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one (temp + fsync + rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _jsonable(v: Any) -> Any:
    if hasattr(v, "numel") and hasattr(v, "tolist"):  # a tensor or array, without importing torch
        v = v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class MetricsWriter:
    """Appends one json object per step to ``metrics.jsonl`` (flushed and fsynced per line).

    ``resume_step`` s: lines with a step > s are dropped first (they came after the checkpoint
    being resumed and will be recomputed; s = 0 empties the file for a run that starts from
    scratch), so the file never holds two records of one step. A torn last line is dropped too.
    """

    def __init__(self, path: str | os.PathLike, resume_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            kept = []
            for line in self.path.read_text().splitlines():
                try:
                    if line.strip() and json.loads(line).get("step", -1) <= resume_step:
                        kept.append(line)
                except json.JSONDecodeError:
                    log.warning("%s: dropped a torn line", self.path)
            atomic_write_text(self.path, "".join(ln + "\n" for ln in kept))
        self._fh = open(self.path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps({k: _jsonable(v) for k, v in record.items()}, sort_keys=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a metrics.jsonl (a torn last line from a crash is skipped)."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s:%d is not valid json (torn write?); skipped", path, i)
    return rows


def make_readable(folder: str | os.PathLike) -> None:
    """Give a folder written through a private temp dir the usual permissions (umask applies):
    mkdtemp and some writers create 0700 folders and 0600 files."""
    folder = Path(folder)
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for f in folder.iterdir():
        if f.is_file():
            f.chmod(0o666 & ~umask)


def explain_write_error(exc: BaseException, path: str | os.PathLike) -> OSError:
    """An OSError that names ``path`` and the free space there, for a failed write of a large file
    (DeepSpeed and torch report a full disk as 'unexpected pos' or a bare errno)."""
    where = Path(path)
    probe = where if where.exists() else where.parent
    try:
        free = shutil.disk_usage(probe).free / 2**30
        space = f"{free:.1f} GiB free there"
    except OSError:
        space = "free space unknown"
    return OSError(f"could not write {where} ({space}): {exc}. Free disk space or point output_root elsewhere; "
                   "the previous checkpoint is intact")


class RunLockedError(RuntimeError):
    """Another live process holds the run directory."""


class RunLock:
    """An exclusive lock on a run directory (``<run>/.lock``), held for the life of the process.

    The OS releases it when the holder dies, so a crashed run's lock is taken over by the next
    launch; a second live writer fails at once with the holder's pid, host and start time.
    """

    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / ".lock"
        self._fh = None

    def acquire(self) -> "RunLock":
        import fcntl  # POSIX; the lock is advisory and per open file

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown process"
            fh.close()
            raise RunLockedError(f"run directory {self.path.parent} is in use by {holder}; wait for it to finish "
                                 "or stop it (two writers would interleave metrics and checkpoints)") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the file drops the flock
            self._fh = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
