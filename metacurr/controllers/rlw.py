"""`random`: Random Loss Weighting (RLW; Lin, Ye, Xu, Shi & Zhang, "Reasonable Effectiveness of Random
Weighting: A Litmus Test for Multi-Task Learning", TMLR 2022 / arXiv 2021), stages in the role of tasks.

Fresh random weights on the simplex at every control step, drawn from the controller's rng:

    distribution="normal"    (the paper's default):  z ~ N(0, I_S),       w = softmax(z)
    distribution="dirichlet" (uniform on the simplex): w ~ Dirichlet(1, ..., 1)

The states are ignored; the baseline asks whether a method beats weights that carry no information.
The paper resamples per optimiser step; here per control step (the controller's cadence).
"""

from __future__ import annotations

import numpy as np

from metacurr.controllers.base import Controller
from metacurr.errors import choices_error
from metacurr.monitors.state import LearningState
from metacurr.weights import normalize

DISTRIBUTIONS = ("normal", "dirichlet")


class RandomWeights(Controller):
    """RLW: random simplex weights each control step.

    Args:
        distribution: ``"normal"`` (softmax of a standard normal, as in RLW) or ``"dirichlet"``.
    """

    name = "random"

    def __init__(self, distribution: str = "normal"):
        if distribution not in DISTRIBUTIONS:
            raise choices_error("random distribution", distribution, DISTRIBUTIONS)
        self.distribution = distribution

    def update(self, state: LearningState) -> np.ndarray:
        if self.distribution == "dirichlet":
            w = self.rng.dirichlet(np.ones(self.n_stages))
        else:
            z = self.rng.standard_normal(self.n_stages)
            w = np.exp(z - z.max())
        self.weights = normalize(w)
        return self.weights.copy()
