"""`sequential`: hard stage switching on a fixed schedule (classic curriculum, Bengio et al. 2009).

Stage ``s`` alone is trained while the upcoming control step's progress lies in ``[s/S, (s+1)/S)``.
"""

from __future__ import annotations

import numpy as np

from metacurr.controllers.base import Controller
from metacurr.monitors.state import LearningState


class Sequential(Controller):
    """w = onehot(floor(progress * S)): one stage at a time, easy to hard, no overlap in time."""

    name = "sequential"

    def reset(self, n_stages: int, rng: np.random.Generator) -> np.ndarray:
        super().reset(n_stages, rng)
        self.weights = np.eye(self.n_stages)[0]
        return self.weights.copy()

    def update(self, state: LearningState) -> np.ndarray:
        stage = min(self.n_stages - 1, int(state.glob["progress"] * self.n_stages))
        self.weights = np.eye(self.n_stages)[stage]
        return self.weights.copy()
