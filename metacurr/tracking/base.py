"""The tracking interface every run logs through (local files always; W&B / TensorBoard optional)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Tracker:
    """Receives a run's config, per-control-step metrics and final summary. Never raises into a run."""

    def start(self, name: str, config: dict, group: str | None = None, tags: list[str] | None = None) -> None:
        """Begin a run."""

    def log(self, metrics: dict[str, Any], step: int) -> None:
        """Log one row of metrics at ``step``."""

    def summary(self, summary: dict[str, Any]) -> None:
        """Record the final summary."""

    def log_artifact(self, path: str | Path, name: str, type: str = "policy") -> None:
        """Record a file or folder (e.g. a policy bundle) as a versioned artifact of the run."""

    def log_table(self, key: str, table: Any) -> None:
        """Record a table (a pandas DataFrame), e.g. one row per evaluation run."""

    def log_images(self, images: dict[str, str | Path]) -> None:
        """Record image files (plots) under the given keys."""

    def use_artifact(self, ref: str) -> None:
        """Record that the run used the artifact ``ref`` (``wandb:ENTITY/PROJECT/NAME:VERSION``): lineage."""

    def finish(self) -> None:
        """End the run (flush files)."""


class NullTracker(Tracker):
    """Does nothing (the default for library calls without ``out``)."""
