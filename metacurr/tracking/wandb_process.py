"""`WandbProcessTracker`: a run's W&B run kept in a child process, so its start-up runs beside the run.

Importing wandb and starting its run cost about 1.5 s of Python work on a 2-core CPU VM
(``python benchmarks/startup.py``), as long as a short ``metacurr train``'s training. In a child process
that work runs on another core while this one trains; the child is a `WandbTracker` fed through a pipe,
so the W&B run on disk is the one an in-process tracker writes (same config, history, summary, exit code,
online-to-offline fallback). It carries ``log``, ``summary`` and ``finish`` only: a job that logs artifacts,
tables or images uses `WandbTracker`.

The protocol (JSON lines): the parent writes ``{"start": {...}}``, then ``{"log": row, "step": n}`` and
``{"summary": {...}}``, then ``{"finish": exit_code}``; the child answers ``{"warning": text}`` for each
warning its tracker logs, ``{"info": {...}}`` once its run started and ``{"finished": true}`` when the run
is complete on disk. Stdin closing without ``finish`` ends the run as failed.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from metacurr.tracking.base import Tracker
from metacurr.tracking.values import plain, scalars
from metacurr.tracking.wandb_env import one_line
from metacurr.tracking.wandb_tracker import WandbTracker

log = logging.getLogger(__name__)

#: The child's program (not ``-m``: this module is imported by its package first, which runpy warns about).
_CHILD = "from metacurr.tracking.wandb_process import child_main; child_main()"
#: Seconds `finish` waits for the child: its offline start may take up to `WandbTracker`'s 60 s bound.
FINISH_TIMEOUT_S = 120.0


class WandbProcessTracker(Tracker):
    """Logs to a W&B run (online or offline) that a child process holds; never raises, never blocks a step.

    Args:
        mode: ``online`` or ``offline`` (see `metacurr.tracking.resolve_mode`).
        out_dir: the run folder; W&B files go to ``out_dir/wandb/`` (None: W&B's default ``./wandb``).
        project: W&B project.
        entity: W&B entity (None: the account's default).
    """

    def __init__(self, mode: str, out_dir: str | Path | None = None, project: str = "metacurr",
                 entity: str | None = None):
        self.mode = mode
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.project = project
        self.entity = entity
        self.proc: subprocess.Popen | None = None
        self._outbox: queue.Queue = queue.Queue()
        self._writer: threading.Thread | None = None
        self._reader: threading.Thread | None = None
        self._info: dict[str, Any] = {"mode": "disabled"}
        self._finished = False

    def start(self, name: str, config: dict, group: str | None = None, tags: list[str] | None = None) -> None:
        if self.mode == "disabled":
            return
        env = dict(os.environ)
        if not env.get("WANDB_MODE", "").strip():  # wandb rejects an empty WANDB_MODE; unset means the same
            env.pop("WANDB_MODE", None)
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", _CHILD], env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        except Exception as e:  # the Tracker contract: a run never fails for its tracking
            log.warning("W&B process could not start (%s); continuing without W&B", one_line(e))
            self.mode = "disabled"
            return
        self._info = {"mode": self.mode}
        self._send({"start": {"mode": self.mode, "out_dir": str(self.out_dir) if self.out_dir is not None else None,
                              "project": self.project, "entity": self.entity, "name": name, "config": plain(config),
                              "group": group, "tags": list(tags or [])}})
        # a thread writes, so a step never waits on the pipe while the child is still importing wandb
        self._writer = threading.Thread(target=self._write_loop, args=(self.proc.stdin,), name="metacurr-wandb-writer",
                                        daemon=True)
        self._reader = threading.Thread(target=self._read_loop, args=(self.proc.stdout,), name="metacurr-wandb-reader",
                                        daemon=True)
        self._writer.start()
        self._reader.start()

    def _send(self, msg: dict) -> None:
        self._outbox.put(json.dumps(msg) + "\n")

    def _write_loop(self, pipe) -> None:
        try:
            while (line := self._outbox.get()) is not None:
                pipe.write(line)
            pipe.close()
        except (OSError, ValueError):  # the child died; finish reports it
            pass

    def _read_loop(self, pipe) -> None:
        for line in pipe:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if "warning" in msg:
                log.warning("%s", msg["warning"])
            elif "info" in msg:
                self._info = dict(msg["info"])
                self.mode = self._info.get("mode", "disabled")
            elif msg.get("finished"):
                self._finished = True

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.proc is not None:
            self._send({"log": scalars(metrics), "step": int(step)})

    def summary(self, summary: dict[str, Any]) -> None:
        if self.proc is not None:
            self._send({"summary": plain(summary)})

    def info(self) -> dict:
        """Mode, run id and the folder ``wandb sync`` takes; complete once `finish` returned."""
        return dict(self._info)

    def finish(self, exit_code: int = 0) -> None:
        """End the W&B run and wait until it is complete on disk (ready for ``wandb sync``)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        self._send({"finish": int(exit_code)})
        self._outbox.put(None)
        assert self._writer is not None and self._reader is not None
        self._writer.join(FINISH_TIMEOUT_S)
        self._reader.join(FINISH_TIMEOUT_S)
        try:
            proc.wait(timeout=1.0 if self._finished else 5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if not self._finished:
            log.warning("W&B process ended before its run finished (exit status %s); the W&B run may be incomplete",
                        proc.returncode)
            if "run_dir" not in self._info:
                self._info = {"mode": "disabled"}


class _Forward(logging.Handler):
    """Sends the child tracker's warnings to the parent, which logs them as its own."""

    def __init__(self, emit_line):
        super().__init__(logging.WARNING)
        self._emit_line = emit_line

    def emit(self, record: logging.LogRecord) -> None:
        self._emit_line({"warning": record.getMessage()})


def _skip_launch_inputs() -> None:
    """Spare ``wandb.init`` its import of W&B Launch (~0.4 s of this process's start-up).

    ``wandb.init`` imports ``wandb.sdk.launch`` only to apply inputs staged by W&B Launch calls
    (``wandb.sdk.launch.manage_config_file`` and the like), which live in that module; this process never
    makes such calls, so there are none to apply.
    """
    try:
        # here, not at the top: the parent process never imports wandb
        from wandb.sdk import wandb_run
    except Exception:  # no wandb: the tracker reports it when it starts
        return
    if "wandb.sdk.launch.inputs.internal" not in sys.modules and hasattr(wandb_run.Run, "_detect_and_apply_job_inputs"):
        wandb_run.Run._detect_and_apply_job_inputs = lambda self: None


def serve(stdin, stdout, on_started: Callable[[], None] | None = None) -> None:
    """The child's side of the protocol: one `WandbTracker` driven by the JSON lines on ``stdin``.

    ``on_started`` is called once the W&B run started (or failed to).
    """
    def emit(msg: dict) -> None:
        stdout.write(json.dumps(msg) + "\n")
        stdout.flush()

    logger = logging.getLogger("metacurr.tracking")
    logger.addHandler(_Forward(emit))
    logger.propagate = False
    first = stdin.readline()
    if not first:
        return
    spec = json.loads(first)["start"]
    _skip_launch_inputs()
    tracker = WandbTracker(spec["mode"], spec["out_dir"], spec["project"], spec["entity"])
    tracker.start(spec["name"], spec["config"], spec["group"], spec["tags"])
    emit({"info": tracker.info()})
    if on_started is not None:
        on_started()
    exit_code = 1  # stdin closed without a finish: the parent died mid-run
    for line in stdin:
        msg = json.loads(line)
        if "log" in msg:
            tracker.log(msg["log"], msg["step"])
        elif "summary" in msg:
            tracker.summary(msg["summary"])
        elif "finish" in msg:
            exit_code = int(msg["finish"])
            break
    tracker.finish(exit_code=exit_code)
    emit({"finished": True})


def child_main() -> None:
    """The child process's entry: serve the parent through stdin and stdout."""
    # Ctrl-C reaches the whole process group: the parent ends this run (as failed) through the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # wandb's import and run start build long-lived objects and little garbage: no collections until the
    # run started, then those objects are frozen out of later ones (less CPU taken from the parent's run)
    gc.disable()

    def started() -> None:
        gc.freeze()
        gc.enable()

    serve(sys.stdin, sys.stdout, started)
    # The run is complete on disk and the parent told: skip the interpreter's teardown (wandb's exit hooks
    # have nothing left to do after `finish`), which the parent would otherwise wait for.
    os._exit(0)
