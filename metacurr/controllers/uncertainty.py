"""`uncertainty`: homoscedastic-uncertainty weighting (Kendall, Gal & Cipolla, "Multi-Task Learning
Using Uncertainty to Weigh Losses for Scene Geometry and Semantics", CVPR 2018, eq. 10), with
curriculum stages in the role of tasks.

Kendall et al. minimise, jointly with the network, ``sum_s 1/(2 sigma_s^2) L_s + log sigma_s`` over
learned log-variances. With ``z_s = log sigma_s^2`` the per-stage objective and its gradient are

    J_s(z_s)  = 0.5 * exp(-z_s) * L_s + 0.5 * z_s
    dJ_s/dz_s = 0.5 * (1 - exp(-z_s) * L_s)

**Adaptation (stated honestly).** Here the inner trainer optimises ``sum_s w_s L_s`` with weights on
the simplex and knows nothing of sigma, so the log-variances cannot be learned by the network's own
optimiser. Instead, at each control step, ``n_iter`` gradient steps of size ``lr`` are taken on J
using the observed per-stage training losses L_s (``LearningState.stage["train_loss"]``):

    z_s <- clip(z_s - lr * 0.5 * (1 - exp(-z_s) * L_s), -z_max, z_max)
    w_s =  exp(-z_s) / sum_r exp(-z_r)                           (w_s proportional to 1 / sigma_s^2)

The fixed point is sigma_s^2 = L_s, i.e. weights inversely proportional to the stage loss: the
method favours the stages that are already easy, like the original. Normalising the weights to sum to
1 drops the overall loss scale ``sum_s 1/(2 sigma_s^2)`` that the original lets grow as losses shrink
(an implicit learning-rate increase); only the relative weighting is kept. Non-finite or negative
losses are treated as 0 (their gradient is then 0.5, which only shrinks z).
"""

from __future__ import annotations

import numpy as np

from metacurr.controllers.base import Controller
from metacurr.errors import ConfigError
from metacurr.monitors.state import LearningState
from metacurr.weights import normalize


class Uncertainty(Controller):
    """Weights proportional to 1 / sigma_s^2 with log-variances fitted online to the stage losses.

    Args:
        lr: step size of the gradient steps on the log-variances.
        n_iter: gradient steps per control step.
        z_max: bound on |log sigma^2| (keeps weights finite).
    """

    name = "uncertainty"

    def __init__(self, lr: float = 0.5, n_iter: int = 1, z_max: float = 20.0):
        if not lr > 0:
            raise ConfigError(f"uncertainty lr must be positive, got {lr!r}")
        if not (isinstance(n_iter, int) and n_iter >= 1):
            raise ConfigError(f"uncertainty n_iter must be a positive integer, got {n_iter!r}")
        if not z_max > 0:
            raise ConfigError(f"uncertainty z_max must be positive, got {z_max!r}")
        self.lr, self.n_iter, self.z_max = float(lr), int(n_iter), float(z_max)

    def reset(self, n_stages: int, rng: np.random.Generator) -> np.ndarray:
        w = super().reset(n_stages, rng)
        self.log_var = np.zeros(self.n_stages)  # sigma = 1, as in the paper's initialisation
        return w

    def update(self, state: LearningState) -> np.ndarray:
        loss = np.asarray(state.stage["train_loss"], dtype=np.float64)
        loss = np.clip(np.nan_to_num(loss, nan=0.0, posinf=1e6, neginf=0.0), 0.0, 1e6)
        z = self.log_var
        for _ in range(self.n_iter):
            grad = 0.5 * (1.0 - np.exp(-z) * loss)
            z = np.clip(z - self.lr * grad, -self.z_max, self.z_max)
        self.log_var = z
        self.weights = normalize(np.exp(-(z - z.min())))
        return self.weights.copy()
