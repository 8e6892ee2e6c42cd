"""`self-paced`: self-paced learning at stage level (Kumar, Packer & Koller, "Self-Paced Learning for
Latent Variable Models", NeurIPS 2010).

Kumar et al. minimise ``sum_i v_i L_i - (1/K) sum_i v_i`` over the model and binary selectors
v_i in {0, 1}; for a fixed model the optimal selector is ``v_i = 1[L_i < 1/K]``, and 1/K is annealed
upward so that harder examples join over time. Here the units are curriculum stages and lambda = 1/K:

    v_s(t)     = 1[ L_s(t) < lambda_t ]                  L_s = probe-set loss of stage s
    lambda_t   = lambda_0 * mu^t                         mu > 1: the threshold grows every control step
    w_s(t)     = v_s(t) / sum_r v_r(t)

The probe loss (``stage["loss"]``, a fixed subset of the stage's training data) is used instead of the
mini-batch training loss because an excluded stage is not trained, so its training loss would never
be refreshed. lambda_0 is set at the first update so that ``start_fraction`` of the stages (at least
one) are included: the ceil(start_fraction * S)-th smallest loss, times (1 + 1e-6). If no stage is
below the threshold (losses can rise), the stage with the smallest loss is trained alone, so the
learner never idles.
"""

from __future__ import annotations

import math

import numpy as np

from metacurr.controllers.base import Controller
from metacurr.errors import ConfigError
from metacurr.monitors.state import LearningState


class SelfPaced(Controller):
    """Hard stage-level self-paced selection with a geometrically growing loss threshold.

    Args:
        growth: mu, the factor by which the threshold grows per control step (> 1).
        start_fraction: fraction of the stages included at the first update, in (0, 1].
    """

    name = "self-paced"

    def __init__(self, growth: float = 1.15, start_fraction: float = 0.3):
        if not growth > 1:
            raise ConfigError(f"self-paced growth must be > 1, got {growth!r}")
        if not (0 < start_fraction <= 1):
            raise ConfigError(f"self-paced start_fraction must be in (0, 1], got {start_fraction!r}")
        self.growth, self.start_fraction = float(growth), float(start_fraction)

    def reset(self, n_stages: int, rng: np.random.Generator) -> np.ndarray:
        w = super().reset(n_stages, rng)
        self.threshold: float | None = None
        return w

    def update(self, state: LearningState) -> np.ndarray:
        loss = np.nan_to_num(np.asarray(state.stage["loss"], dtype=np.float64), nan=np.inf, posinf=np.inf, neginf=-np.inf)
        if self.threshold is None:
            k = max(1, math.ceil(self.start_fraction * self.n_stages))
            kth = float(np.sort(loss)[k - 1])
            self.threshold = kth + 1e-6 * abs(kth) + 1e-12 if np.isfinite(kth) else math.inf
        else:
            # lambda * mu for lambda > 0; the same absolute increment keeps a negative lambda growing too.
            self.threshold = min(self.threshold + (abs(self.threshold) + 1e-12) * (self.growth - 1.0), 1e300)
        v = (loss <= self.threshold).astype(np.float64)
        if v.sum() == 0:
            v[int(np.argmin(loss))] = 1.0
        self.weights = v / v.sum()
        return self.weights.copy()
