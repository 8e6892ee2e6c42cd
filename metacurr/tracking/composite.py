"""`make_tracker`: the one way a metacurr run gets its trackers (local record + W&B + TensorBoard)."""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metacurr.tracking.base import Tracker
from metacurr.tracking.local import LocalTracker
from metacurr.tracking.tensorboard import TensorBoardTracker
from metacurr.tracking.wandb_env import resolve_mode
from metacurr.tracking.wandb_process import WandbProcessTracker
from metacurr.tracking.wandb_tracker import WandbTracker

log = logging.getLogger(__name__)

DEFAULT_PROJECT = "metacurr"

#: The W&B members: in this process, or in a child process (`make_tracker(wandb_process=True)`).
_WANDB = (WandbTracker, WandbProcessTracker)


class CompositeTracker(Tracker):
    """Forwards every call to its trackers; one failing tracker never stops the others or the run.

    Attributes:
        trackers: the members, in call order.
        name: the run name.
    """

    def __init__(self, trackers: Sequence[Tracker], name: str = ""):
        self.trackers = list(trackers)
        self.name = name

    def _each(self, method: str, *args: Any, **kwargs: Any) -> None:
        for t in self.trackers:
            try:
                getattr(t, method)(*args, **kwargs)
            except Exception as e:  # the Tracker contract: never raise into a run
                log.warning("%s.%s failed (%s)", type(t).__name__, method, e)

    def start(self, name: str, config: dict, group: str | None = None, tags: list[str] | None = None) -> None:
        self.name = name
        self._each("start", name, config, group, tags)
        local, wb = self.member(LocalTracker), self.member(_WANDB)
        if local is not None:
            tb = self.member(TensorBoardTracker)
            try:
                local.update(wandb=wb.info() if wb is not None else {"mode": "disabled"},
                             tensorboard=str(tb.log_dir) if tb is not None else None)
            except Exception as e:
                log.warning("tracking.json not updated (%s)", e)

    def log(self, metrics: dict[str, Any], step: int) -> None:
        self._each("log", metrics, step)

    def summary(self, summary: dict[str, Any]) -> None:
        self._each("summary", summary)

    def log_artifact(self, path: str | Path, name: str, type: str = "policy") -> None:
        self._each("log_artifact", path, name, type)

    def log_table(self, key: str, table: Any) -> None:
        self._each("log_table", key, table)

    def log_images(self, images: dict[str, str | Path]) -> None:
        self._each("log_images", images)

    def use_artifact(self, ref: str) -> None:
        self._each("use_artifact", ref)

    def finish(self, exit_code: int = 0) -> None:
        """End every member; ``exit_code`` != 0 marks the run failed (W&B and ``tracking.json``).

        The local record ends last: a W&B run in a child process says where it lives once it finished.
        """
        local = self.member(LocalTracker)
        for t in [t for t in self.trackers if t is not local] + ([local] if local is not None else []):
            try:
                if t is local and isinstance(wb := self.member(WandbProcessTracker), WandbProcessTracker):
                    t.update(wandb=wb.info())
                if isinstance(t, LocalTracker | WandbTracker | WandbProcessTracker):
                    t.finish(exit_code=exit_code)
                else:
                    t.finish()
            except Exception as e:
                log.warning("%s.finish failed (%s)", type(t).__name__, e)

    def member(self, cls: type | tuple[type, ...]) -> Any:
        """The first member of type ``cls`` (or of one of the types ``cls`` holds), or None."""
        return next((t for t in self.trackers if isinstance(t, cls)), None)

    @property
    def wandb_info(self) -> dict:
        """``{"mode": online|offline|disabled, "id", "run_dir" (what ``wandb sync`` takes), "url"}``."""
        wb = self.member(_WANDB)
        if wb is None:
            return {"mode": "disabled"}
        if isinstance(wb, WandbProcessTracker):
            return wb.info()
        local = self.member(LocalTracker)
        # after finish the live run is gone; the record kept at start still says where it lives
        if wb.run is None and local is not None and "wandb" in local.record:
            return dict(local.record["wandb"])
        return wb.info()

    def __enter__(self) -> CompositeTracker:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish(exit_code=0 if exc_type is None else 1)


def _slug(text: Any) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-") or "x"


def run_name(task: Any, controller: Any, seed: Any, when: float | None = None) -> str:
    """``task__controller__seed__unixtime`` (CleanRL's convention), with path characters made safe."""
    return f"{_slug(task)}__{_slug(controller)}__{_slug(seed)}__{int(time.time() if when is None else when)}"


@functools.lru_cache(maxsize=1)
def git_commit() -> str | None:
    """Short hash of the commit metacurr's source is checked out at; None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=2, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.strip()
    return text if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{4,40}", text) else None


def make_tracker(
    mode: str = "auto",
    out_dir: str | Path | None = None,
    *,
    project: str | None = None,
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] | None = None,
    config: dict | None = None,
    tensorboard: bool = True,
    entity: str | None = None,
    wandb_process: bool = False,
) -> CompositeTracker:
    """Build and start the tracker of one run. Never raises once ``mode`` is valid; never blocks long.

    Members: a `LocalTracker` (``out_dir/tracking.json``), a `WandbTracker` (unless W&B is disabled)
    and a `TensorBoardTracker` (``out_dir/tb``). Both file-based members need ``out_dir``.

    Usage::

        tracker = make_tracker("auto", out, name=run_name(task, controller, seed),
                               group="my-study", tags=[controller, task, arch], config=cfg.to_dict())
        try:
            ...  # tracker.log(row, step) per step, tracker.summary(summary) at the end
        finally:
            tracker.finish()

    Args:
        mode: ``auto`` (online when a W&B API key is configured, else offline; ``WANDB_MODE`` wins when
            set), ``online`` (falls back to offline if the server cannot be reached), ``offline`` or
            ``disabled`` (``off`` also accepted).
        out_dir: the run folder; W&B's files go to ``out_dir/wandb/``.
        project: W&B project (default ``$WANDB_PROJECT`` or ``metacurr``).
        name: run name (default ``<out_dir name>__<unixtime>``; see `run_name`).
        group: W&B group (e.g. a sweep or a study).
        tags: W&B tags; ``git:<short hash>`` of metacurr's checkout is added when there is one.
        config: the full resolved config of the run (recorded as the W&B config).
        tensorboard: also write TensorBoard events to ``out_dir/tb``.
        entity: W&B entity (default: the account's).
        wandb_process: hold the W&B run in a child process (`WandbProcessTracker`: log, summary and
            finish only), so W&B's start-up runs beside the run on another core. Ignored when a W&B run is
            already active in this process (a sweep agent's): the tracker logs into that one.

    Returns:
        A started `CompositeTracker`; call ``finish()`` when the run ends.

    Raises:
        ConfigError: unknown ``mode``.
    """
    resolved = resolve_mode(mode)
    out = Path(out_dir) if out_dir is not None else None
    members: list[Tracker] = []
    if out is not None:
        members.append(LocalTracker(out))
    if resolved != "disabled":
        active = "wandb" in sys.modules and getattr(sys.modules["wandb"], "run", None) is not None
        cls = WandbProcessTracker if wandb_process and not active else WandbTracker
        members.append(cls(resolved, out, project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT, entity))
    if tensorboard and out is not None:
        members.append(TensorBoardTracker(out / "tb"))
    all_tags = list(dict.fromkeys(str(t) for t in (tags or []) if str(t)))
    commit = git_commit()
    if commit:
        all_tags.append(f"git:{commit}")
    if name is None:
        name = f"{_slug(out.name) if out is not None else 'metacurr'}__{int(time.time())}"
    tracker = CompositeTracker(members, name)
    tracker.start(name, dict(config or {}), group, all_tags)
    return tracker
