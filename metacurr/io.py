"""Atomic artifact writes: a crash never leaves a half-written file (temp file in the same folder + rename)."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import yaml


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process umask, read once at import (reading it means setting it, which is not thread-safe).
UMASK = _read_umask()
#: Mode of new artifact files: what ``open(path, "w")`` would give (mkstemp alone makes them 0600).
FILE_MODE = 0o666 & ~UMASK
#: Mode of new artifact folders made with mkdtemp (e.g. a policy bundle), likewise.
DIR_MODE = 0o777 & ~UMASK


def fsync_dir(folder: str | Path) -> None:
    """Flush a folder's entries (a completed rename) to disk; best effort (not every OS / file system can)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a mix.

    The bytes go to a temp file in the same folder (``.NAME.XXXX.tmp``), are fsynced, and the temp file is
    renamed over ``path``; on any error (or Ctrl-C) the temp file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if hasattr(os, "fchmod"):  # POSIX
                os.fchmod(f.fileno(), FILE_MODE)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _default(o: Any):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj: Any, **kw) -> str:
    """JSON with numpy support; non-finite floats become null (strict JSON)."""
    return json.dumps(_finite(obj), default=_default, allow_nan=False, **kw)


def _finite(o: Any) -> Any:
    if isinstance(o, float | np.floating):
        return float(o) if math.isfinite(float(o)) else None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list | tuple):
        return [_finite(v) for v in o]
    if isinstance(o, np.ndarray):
        return _finite(o.tolist())
    return o


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict]) -> None:
    atomic_write_text(path, "".join(dumps(r, sort_keys=True) + "\n" for r in rows))


def atomic_write_yaml(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(_finite(obj), sort_keys=False))


#: Sub-folders of an output folder kept when a run fails: what a rerun resumes from (agent checkpoints,
#: the evaluation's per-run store, a sweep's trials).
RESUMABLE = ("checkpoints", "runs")


def _entries(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


class OutputFolder:
    """The output folder of one command: on a failed write, remove what this run added.

    Used as ``with OutputFolder(out): ...``. When the body raises `OSError` (a full disk, a file system
    turned read-only, a permission error), every file and folder it created in ``out`` is removed --
    except under `RESUMABLE` sub-folders, which a rerun continues from -- and ``out`` itself if this run
    created it. Files that existed before are left as they are (atomic writes never tear them). The
    error propagates; `removed` counts what was taken away.
    """

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.existed = self.out.exists()
        self.before = _entries(self.out)
        self.removed = 0

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None and issubclass(exc_type, OSError):
            self.rollback()
        return False

    def rollback(self) -> None:
        new = sorted(_entries(self.out) - self.before, key=lambda p: p.count(os.sep), reverse=True)
        for rel in new:
            if rel.split(os.sep)[0] in RESUMABLE and rel not in RESUMABLE:
                continue
            p = self.out / rel
            try:
                if p.is_dir() and not p.is_symlink():
                    if rel in RESUMABLE:
                        if not any(p.iterdir()):
                            p.rmdir()  # an empty store holds nothing to resume
                        continue
                    shutil.rmtree(p)
                else:
                    p.unlink()
                self.removed += 1
            except OSError:
                pass
        if not self.existed:
            try:
                self.out.rmdir()  # only when empty
            except OSError:
                pass
