"""`best-static`: fixed stage weights at every control step, chosen by a grid search on the target set.

The strongest fixed-weight baseline: an oracle-tuned static mixture, the usual reference of
loss-weighting studies (e.g. the grid-searched static weights of Kendall, Gal & Cipolla, CVPR 2018,
Table 1, and of Chen et al., GradNorm, ICML 2018, Section 5.1). The controller holds only the chosen
weights; the search that chooses them is an evaluation procedure and lives in
`metacurr.evaluation.best_static_search` (``metacurr evaluate`` runs it and passes the weights).
Without ``weights`` the controller is uniform.
"""

from __future__ import annotations

import numpy as np

from metacurr.controllers.base import Controller, normalize
from metacurr.errors import ConfigError
from metacurr.monitors.state import LearningState


class BestStatic(Controller):
    """Static weights ``weights`` at every control step (found by `metacurr.evaluation.best_static_search.search`).

    Args:
        weights: the static stage weights (normalised); None = uniform.
    """

    name = "best-static"

    def __init__(self, weights: list[float] | None = None):
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.ndim != 1 or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
                raise ConfigError(f"best-static weights must be non-negative finite numbers with a positive sum, got {weights!r}")
            weights = [float(v) for v in normalize(w)]
        self.static = weights

    def reset(self, n_stages: int, rng: np.random.Generator) -> np.ndarray:
        super().reset(n_stages, rng)
        if self.static is not None:
            if len(self.static) != self.n_stages:
                raise ConfigError(f"best-static has {len(self.static)} weights for {self.n_stages} stages")
            self.weights = np.asarray(self.static, dtype=np.float64)
        return self.weights.copy()

    def update(self, state: LearningState) -> np.ndarray:
        return self.weights.copy()

    def config(self) -> dict:
        return {"weights": self.static}
