"""`LocalTracker`: the run's identity and last-known values in ``out_dir/tracking.json``.

Per-step metrics are not copied here: ``metrics.jsonl`` (written by `metacurr.run.write_run`) or the
agent's own files hold them. ``tracking.json`` holds what W&B calls the run summary -- the last value of
every logged key, overridden by the explicit summary -- plus the run's name, tags, status and where its
W&B and TensorBoard files are. A sweep reads its metric from here, the way W&B's sweep controller reads
it from the run summary.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from metacurr.io import atomic_write_json
from metacurr.tracking.base import Tracker
from metacurr.tracking.values import plain, scalars

#: File name of the local record, inside the run folder.
TRACKING_FILE = "tracking.json"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class LocalTracker(Tracker):
    """Writes ``out_dir/tracking.json`` at start (status ``running``) and at finish.

    Args:
        out_dir: the run folder.
    """

    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / TRACKING_FILE
        self.record: dict[str, Any] = {}
        self.last: dict[str, Any] = {}

    def start(self, name: str, config: dict, group: str | None = None, tags: list[str] | None = None) -> None:
        self.record = {"name": name, "group": group, "tags": list(tags or []), "status": "running",
                       "started_at": _now(), "summary": {}}
        self._write()

    def update(self, **fields: Any) -> None:
        """Add fields to the record (e.g. where the W&B run lives) and rewrite the file."""
        self.record.update(plain(fields))
        self._write()

    def log(self, metrics: dict[str, Any], step: int) -> None:
        self.last.update(scalars(metrics))
        self.last["_step"] = int(step)

    def summary(self, summary: dict[str, Any]) -> None:
        self.last.update(plain(summary))

    def finish(self, exit_code: int = 0) -> None:
        if not self.record:
            return
        self.record.update(status="finished" if exit_code == 0 else "failed", exit_code=int(exit_code),
                           finished_at=_now(), summary=plain(self.last))
        try:
            self._write()
        except OSError:
            self.path.unlink(missing_ok=True)  # a record left saying "running" would be false
            raise

    def _write(self) -> None:
        atomic_write_json(self.path, self.record)
