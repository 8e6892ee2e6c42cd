"""`linear-pacing`: stages are unlocked at a linear pace and trained together once unlocked.

A pacing function in the sense of Hacohen & Weinshall (2019), applied at stage granularity: with
progress ``p`` in [0, 1], the first ``m = 1 + floor(p * S / pace)`` stages (at most S) are active with
equal weight. ``pace`` = fraction of the run by which every stage is unlocked.
"""

from __future__ import annotations

import numpy as np

from metacurr.controllers.base import Controller
from metacurr.errors import ConfigError
from metacurr.monitors.state import LearningState


class LinearPacing(Controller):
    """w_s = 1/m for s < m, 0 otherwise, with m growing linearly in progress."""

    name = "linear-pacing"

    def __init__(self, pace: float = 0.8):
        if not (0 < pace <= 1):
            raise ConfigError(f"linear-pacing pace must be in (0, 1], got {pace!r}")
        self.pace = float(pace)

    def reset(self, n_stages: int, rng: np.random.Generator) -> np.ndarray:
        super().reset(n_stages, rng)
        self.weights = np.eye(self.n_stages)[0]
        return self.weights.copy()

    def update(self, state: LearningState) -> np.ndarray:
        m = min(self.n_stages, 1 + int(state.glob["progress"] * self.n_stages / self.pace))
        w = np.zeros(self.n_stages)
        w[:m] = 1.0 / m
        self.weights = w
        return w.copy()
