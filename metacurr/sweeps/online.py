"""Online sweeps: W&B's own controller and agents (``wandb.sweep`` / ``wandb.agent``).

Both fail in seconds with one line when W&B cannot be used here (offline mode, not logged in, server
unreachable): `metacurr.tracking.require_online` checks before any API call, and API calls run under a
timeout.
"""

from __future__ import annotations

import os
from pathlib import Path

from metacurr.errors import ConfigError
from metacurr.sweeps.spec import SweepSpec
from metacurr.tracking.composite import DEFAULT_PROJECT
from metacurr.tracking.wandb_env import (
    API_TIMEOUT_S,
    call_with_timeout,
    one_line,
    quiet_wandb,
    require_online,
)

#: Root of trial folders of online agents: DIR/<sweep id>/runs/<W&B run id>/.
DEFAULT_OUT_ROOT = "runs/sweeps"
#: Environment variable that overrides DEFAULT_OUT_ROOT for `metacurr sweep-run` (set by `metacurr agent --out-root`).
OUT_ROOT_ENV = "METACURR_SWEEP_OUT_ROOT"


def _project(spec_or_raw: dict, project: str | None) -> str:
    return project or spec_or_raw.get("project") or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT


def create_sweep(spec: SweepSpec, *, project: str | None = None, entity: str | None = None) -> str:
    """Register the sweep with W&B; return ``ENTITY/PROJECT/SWEEP_ID`` (what ``wandb agent`` takes).

    Raises:
        ConfigError: W&B offline / not logged in / unreachable, or the server rejected the config.
    """
    require_online("creating a W&B sweep")
    proj = _project(spec.raw, project)
    ent = entity or spec.raw.get("entity")

    def create() -> tuple[str, str]:
        # wandb is imported only when W&B is used: its import takes about a second
        import wandb

        quiet_wandb()
        sid = wandb.sweep(sweep=dict(spec.raw), project=proj, entity=ent)
        if not sid:
            raise ConfigError("W&B did not create the sweep (see wandb/debug.log)")
        return sid, ent or wandb.Api(timeout=30).default_entity

    sid, ent = call_with_timeout(create, API_TIMEOUT_S, "creating the W&B sweep")
    return f"{ent}/{proj}/{sid}"


def parse_sweep_ref(ref: str, project: str | None = None, entity: str | None = None) -> tuple[str | None, str, str]:
    """``ENTITY/PROJECT/ID``, ``PROJECT/ID`` or ``ID`` -> (entity, project, id).

    Raises:
        ConfigError: more than three parts or an empty part.
    """
    parts = ref.strip().split("/")
    if len(parts) > 3 or any(not p for p in parts):
        raise ConfigError(f"bad sweep id {ref!r}; expected ENTITY/PROJECT/SWEEP_ID (as `metacurr sweep` prints it)")
    sid = parts[-1]
    proj = parts[-2] if len(parts) >= 2 else (project or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT)
    ent = parts[-3] if len(parts) == 3 else entity
    return ent, proj, sid


def run_agent(
    ref: str,
    *,
    count: int | None = None,
    project: str | None = None,
    entity: str | None = None,
    out_root: str | Path | None = None,
) -> None:
    """Run a W&B sweep agent here: like ``wandb agent``, each trial is the sweep's ``command`` --
    ``metacurr sweep-run`` -> `run_trial` -- in its own process.

    A process per trial (W&B's command mode, not ``wandb.agent(function=...)``, which runs trials in a
    thread of this process) keeps trials isolated: SB3's signal handling needs a main thread, and a
    crashing trial cannot take the agent down. Run it from the folder the sweep file's paths are
    relative to (the repository root).

    Args:
        ref: ``ENTITY/PROJECT/SWEEP_ID`` (or ``SWEEP_ID`` with ``project`` / ``entity``).
        count: trials this agent runs before exiting (None: until the sweep ends).
        out_root: root of the trial folders (``OUT_ROOT/<sweep id>/runs/<run id>``); default ``runs/sweeps``.

    Raises:
        ConfigError: W&B unusable here (offline, not logged in, unreachable) or the agent failed to start.
    """
    ent, proj, sid = parse_sweep_ref(ref, project, entity)  # a malformed id is reported before any network check
    require_online("running a W&B sweep agent")
    if out_root is not None:
        os.environ[OUT_ROOT_ENV] = str(out_root)  # read by the trial processes the agent starts
    # wandb is imported only when W&B is used: its import takes about a second
    import wandb

    try:
        wandb.agent(sid, entity=ent, project=proj, count=count)
    except Exception as e:
        raise ConfigError(f"W&B agent for {ref} failed: {one_line(e)}") from None
