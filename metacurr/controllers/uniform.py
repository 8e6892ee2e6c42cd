"""`uniform`: every stage weighs the same, always (the fixed-weight baseline the paper argues against)."""

from __future__ import annotations

import numpy as np

from metacurr.controllers.base import Controller
from metacurr.monitors.state import LearningState


class Uniform(Controller):
    """w_s = 1 / S at every control step."""

    name = "uniform"

    def update(self, state: LearningState) -> np.ndarray:
        return np.full(self.n_stages, 1.0 / self.n_stages)
