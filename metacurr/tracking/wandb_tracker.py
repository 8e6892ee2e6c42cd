"""`WandbTracker`: one W&B run per metacurr run; any W&B failure becomes a logged warning.

An online run that cannot start (no key, no network) falls back to an offline run, and an offline run
that cannot start falls back to none: the run itself always goes on, its local files always written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from metacurr.tracking.artifacts import log_artifact, use_artifact
from metacurr.tracking.base import Tracker
from metacurr.tracking.values import plain, scalars
from metacurr.tracking.wandb_env import ONLINE_INIT_TIMEOUT_S, one_line, quiet_wandb

log = logging.getLogger(__name__)

#: W&B rejects longer tags.
_MAX_TAG = 64
#: Offline init only starts a local service process; this bounds a wedged one.
_OFFLINE_INIT_TIMEOUT_S = 60.0


class WandbTracker(Tracker):
    """Logs to a W&B run (online or offline).

    If a W&B run is already active in this process when `start` is called -- a sweep agent's run, or
    one the user started -- the tracker logs into that run and leaves finishing it to its owner.

    Args:
        mode: ``online``, ``offline`` or ``disabled`` (see `metacurr.tracking.resolve_mode`).
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
        self.run: Any = None
        self.owned = False
        self._warned_log = False

    def start(self, name: str, config: dict, group: str | None = None, tags: list[str] | None = None) -> None:
        if self.mode == "disabled":
            return
        tags = [t[:_MAX_TAG] for t in (tags or [])]
        try:
            # wandb is imported only when W&B is used: its import takes about a second
            import wandb

            quiet_wandb()
        except Exception as e:
            log.warning("W&B unavailable (%s); continuing without it", one_line(e))
            self.mode = "disabled"
            return
        if wandb.run is not None:
            self._adopt(wandb.run, name, config, tags)
            return
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        modes = [self.mode, "offline"] if self.mode == "online" else [self.mode]
        for i, mode in enumerate(modes):
            try:
                self.run = wandb.init(
                    mode=mode,
                    project=self.project,
                    entity=self.entity,
                    name=name,
                    group=group,
                    tags=tags or None,
                    config=plain(config),
                    dir=str(self.out_dir) if self.out_dir is not None else None,
                    settings=wandb.Settings(
                        silent=True,
                        # W&B would otherwise wrap sys.stdout/stderr of the whole process
                        console="off",
                        init_timeout=ONLINE_INIT_TIMEOUT_S if mode == "online" else _OFFLINE_INIT_TIMEOUT_S,
                    ),
                )
            except Exception as e:
                then = "falling back to offline" if i + 1 < len(modes) else "continuing without W&B"
                log.warning("W&B %s run could not start (%s); %s", mode, one_line(e), then)
                continue
            self.owned = True
            self.mode = mode
            return
        self.run = None
        self.mode = "disabled"

    def _adopt(self, run: Any, name: str, config: dict, tags: list[str]) -> None:
        self.run, self.owned = run, False
        self.mode = "offline" if getattr(run.settings, "mode", "") in ("offline", "dryrun") else "online"
        try:
            run.config.update(plain(config), allow_val_change=True)
            if name:
                run.name = name
            if tags:
                run.tags = tuple(dict.fromkeys([*run.tags, *tags]))
        except Exception as e:
            log.warning("W&B: could not update the active run's config (%s)", one_line(e))

    def log(self, metrics: dict[str, Any], step: int) -> None:
        if self.run is None:
            return
        try:
            self.run.log(scalars(metrics), step=int(step))
        except Exception as e:
            if not self._warned_log:  # once: a broken run would otherwise warn every control step
                log.warning("W&B log failed (%s); later failures are not reported", one_line(e))
                self._warned_log = True

    def summary(self, summary: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            self.run.summary.update(plain(summary))
        except Exception as e:
            log.warning("W&B summary failed (%s)", one_line(e))

    def log_artifact(self, path: str | Path, name: str, type: str = "policy") -> None:
        if self.run is None:
            return

        log_artifact(path, name, type, run=self.run)

    def log_table(self, key: str, table: Any) -> None:
        if self.run is None:
            return
        try:
            import wandb  # only when W&B is used: its import takes about a second

            self.run.log({key: wandb.Table(dataframe=table)})
        except Exception as e:
            log.warning("W&B table %s not logged (%s)", key, one_line(e))

    def log_images(self, images: dict[str, str | Path]) -> None:
        if self.run is None or not images:
            return
        try:
            import wandb  # only when W&B is used: its import takes about a second

            self.run.log({key: wandb.Image(str(path)) for key, path in images.items()})
        except Exception as e:
            log.warning("W&B images not logged (%s)", one_line(e))

    def use_artifact(self, ref: str) -> None:
        if self.run is None:
            return
        use_artifact(ref, run=self.run)

    def info(self) -> dict:
        """Mode, run id and the folder ``wandb sync`` takes (for offline runs)."""
        if self.run is None:
            return {"mode": "disabled"}
        out: dict[str, Any] = {"mode": self.mode}
        try:
            out["id"] = self.run.id
            out["project"] = self.run.project
            out["run_dir"] = str(Path(self.run.dir).parent)
            if self.mode == "online":
                out["url"] = self.run.url
        except Exception as e:
            log.debug("W&B run info unavailable: %s", e)
        return out

    def finish(self, exit_code: int = 0) -> None:
        if self.run is None:
            return
        run, self.run = self.run, None
        if not self.owned:
            return
        try:
            run.finish(exit_code=exit_code)
            # wandb is imported only when W&B is used: its import takes about a second
            import wandb  # only when W&B is used: its import takes about a second

            # finish() returns before W&B's service has written the run file; teardown waits for it, so
            # the run is complete on disk (ready for `wandb sync`) when finish returns. Only when no
            # other run of this process is live: teardown ends them all.
            if wandb.run is None:
                wandb.teardown()
        except Exception as e:
            log.warning("W&B finish failed (%s)", one_line(e))
