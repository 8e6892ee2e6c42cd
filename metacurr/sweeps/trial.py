"""One sweep trial: base config + parameters -> the target's library job in RUN_DIR -> metric.

The same function serves a local sweep's worker processes, ``wandb agent`` (through
``metacurr sweep-run``) and ``metacurr agent``, so a trial is the same run wherever it executes.

The target (`metacurr.sweeps.targets`) is a library job; the CLI line that repeats it by hand is recorded
as the trial's ``command``. A trial folder holds ``trial-config.yaml`` (the exact config the target ran),
everything the target writes (``summary.json``, ``tracking.json``, ``wandb/``, ...), ``output.log`` (its console output, in
local sweeps) and ``trial.json`` (parameters, status, metric): the marker a resumed sweep reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from metacurr.errors import ConfigError
from metacurr.io import atomic_write_json, atomic_write_yaml
from metacurr.sweeps.overrides import apply_params
from metacurr.sweeps.spec import TrialCommand
from metacurr.sweeps.targets import check_target

log = logging.getLogger(__name__)

TRIAL_FILE = "trial.json"
CONFIG_FILE = "trial-config.yaml"
LOG_FILE = "output.log"


@dataclasses.dataclass
class TrialResult:
    """The outcome of one trial (also its ``trial.json``)."""

    run_id: str
    params: dict
    status: str
    """running, finished or failed."""
    metric: float | None = None
    wall_s: float | None = None
    error: str | None = None
    run_dir: str = ""
    command: str | None = None
    """The ``metacurr`` command line that repeats the trial by hand."""
    resumed: bool = False
    """Found finished on disk and not rerun."""

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("resumed")
        return d


def run_id(params: dict) -> str:
    """A short id determined by the parameter values alone (so a rerun finds its earlier trials)."""
    blob = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def read_metric(run_dir: str | Path, name: str) -> float | None:
    """The run's value of ``name``: ``tracking.json``'s summary (W&B semantics: last logged value,
    overridden by the final summary), else ``summary.json``. None if absent or not a finite number."""
    run_dir = Path(run_dir)
    for fname, section in (("tracking.json", "summary"), ("summary.json", None)):
        try:
            data = json.loads((run_dir / fname).read_text())
        except (OSError, ValueError):
            continue
        if section is not None:
            data = data.get(section) or {}
        if name in data:
            return _number(data[name])
    return None


def load_trial(run_dir: str | Path) -> TrialResult | None:
    """The recorded trial in ``run_dir`` (None if there is none or it is unreadable)."""
    try:
        d = json.loads((Path(run_dir) / TRIAL_FILE).read_text())
        return TrialResult(**{f.name: d[f.name] for f in dataclasses.fields(TrialResult) if f.name in d})
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _active_wandb_run() -> Any:
    mod = sys.modules.get("wandb")
    return getattr(mod, "run", None) if mod is not None else None


def target_argv(command: TrialCommand, config_path: Path, run_dir: Path, *, wandb: str, group: str | None,
                tags: list[str]) -> list[str]:
    """The ``metacurr`` command line that runs the same job as the trial (tracking flags only where the
    target takes them)."""
    tracking = check_target(command.target).tracking
    argv = [command.target, "--config", str(config_path), "--out", str(run_dir)]
    if "wandb" in tracking:
        argv += ["--wandb", wandb]
    if group and "group" in tracking:
        argv += ["--group", group]
    if tags and "tags" in tracking:
        argv += ["--tags", ",".join(tags)]
    return argv + ["--no-progress"]


def run_trial(
    command: TrialCommand,
    params: dict,
    run_dir: str | Path,
    *,
    metric: str | None = None,
    wandb: str = "offline",
    group: str | None = None,
    tags: list[str] | tuple[str, ...] = (),
    capture: bool = True,
) -> TrialResult:
    """Run one trial in this process and record it in ``run_dir/trial.json``. Never raises for a
    failing target: the failure is the result.

    Args:
        command: target subcommand and base config.
        params: sweep parameters (dotted names) set into the base config.
        run_dir: the trial folder (the target's ``--out``).
        metric: summary key to report (None: none).
        wandb: the target's W&B mode (``offline`` in local sweeps).
        group, tags: W&B group and tags of the run.
        capture: send the target's stdout/stderr to ``run_dir/output.log`` (local sweeps).

    Returns:
        The `TrialResult`.
    """
    target = check_target(command.target)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    rid = run_dir.name
    result = TrialResult(rid, dict(params), "running", run_dir=str(run_dir))
    atomic_write_json(run_dir / TRIAL_FILE, result.to_dict())
    before = _active_wandb_run()
    t0 = time.perf_counter()
    error = None
    ok = False
    log_path = run_dir / LOG_FILE
    with contextlib.ExitStack() as stack:
        if capture:
            fh = stack.enter_context(open(log_path, "w", buffering=1))
            stack.enter_context(contextlib.redirect_stdout(fh))
            stack.enter_context(contextlib.redirect_stderr(fh))
        try:
            data = apply_params(command.base_config(), params)
            cfg_path = run_dir / CONFIG_FILE
            atomic_write_yaml(cfg_path, data)
            argv = target_argv(command, cfg_path, run_dir, wandb=wandb, group=group, tags=list(tags))
            result.command = "metacurr " + " ".join(argv)
            if capture:
                fh.write(f"$ {result.command}\n")
            target.run(cfg_path, run_dir, wandb=wandb, group=group, tags=list(tags))
            ok = True
        except ConfigError as e:  # bad input: one line, no traceback
            error = f"ConfigError: {e}"
            if capture:
                fh.write(f"error: {e}\n")
            else:
                log.error("trial %s: %s", rid, error)
        except Exception as e:  # a crashing target is a failed trial, not a failed sweep
            if capture:  # the trial's own log file gets the traceback
                traceback.print_exc(file=fh)
            else:
                log.error("trial %s: `metacurr %s` crashed", rid, command.target, exc_info=True)
            error = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".strip()
    stray = _active_wandb_run()
    if stray is not None and stray is not before:  # a target that crashed before finishing its W&B run
        with contextlib.suppress(Exception):
            stray.finish(exit_code=1)
    result.wall_s = time.perf_counter() - t0
    result.metric = read_metric(run_dir, metric) if metric else None
    if ok and (metric is None or result.metric is not None):
        result.status = "finished"
    else:
        result.status = "failed"
        if error is None:
            error = f"metric {metric!r} not in the run's summary (tracking.json / summary.json)"
        result.error = error
    atomic_write_json(run_dir / TRIAL_FILE, result.to_dict())
    return result
