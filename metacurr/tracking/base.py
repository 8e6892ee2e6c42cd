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

    def finish(self) -> None:
        """End the run (flush files)."""


class NullTracker(Tracker):
    """Does nothing (the default for library calls without ``out``)."""
