"""`random-policy`: uniformly random actions pushed through the environment's action mapping.

The reference point for a learned policy: the same action space and the same smoothed, step-bounded,
floored `WeightMapping` that the Gymnasium environment and `PolicyController` use, but actions drawn
without looking at the state:

    a_t ~ U[-1, 1]^S                (controller rng)
    w_t = WeightMapping.apply(w_{t-1}, a_t)

so any gain of a trained policy over this controller comes from what it reads, not from the mapping's
smoothing or floor. (Random policies as the floor of RL evaluation: e.g. Machado et al. 2018,
"Revisiting the Arcade Learning Environment"; here it plays the role RLW plays for loss weighting.)
"""

from __future__ import annotations

import numpy as np

from metacurr.controllers.base import Controller
from metacurr.monitors.state import LearningState
from metacurr.weights import WeightMapping


class RandomPolicy(Controller):
    """Uniform random actions in [-1, 1]^S mapped through the shared `WeightMapping`.

    Args:
        eta, smoothing, max_step, floor: the mapping's parameters (defaults = the environment's).
    """

    name = "random-policy"

    def __init__(self, eta: float | None = None, smoothing: float | None = None,
                 max_step: float | None = None, floor: float | None = None):
        given = {"eta": eta, "smoothing": smoothing, "max_step": max_step, "floor": floor}
        self.mapping = WeightMapping(**{k: v for k, v in given.items() if v is not None})
        self.eta, self.smoothing = self.mapping.eta, self.mapping.smoothing
        self.max_step, self.floor = self.mapping.max_step, self.mapping.floor

    def update(self, state: LearningState) -> np.ndarray:
        action = self.rng.uniform(-1.0, 1.0, self.n_stages)
        self.weights = self.mapping.apply(self.weights, action)
        return self.weights.copy()
