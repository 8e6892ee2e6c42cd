"""`gradnorm`: GradNorm (Chen, Badrinarayanan, Lee & Rabinovich, "GradNorm: Gradient Normalization for
Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018, eqs. 1-2), with curriculum stages in
the role of tasks and the monitored head gradient as the shared layer W.

With g_s = ``LearningState.stage["grad_norm"]`` (norm of stage s's mean head gradient of its *unweighted*
probe loss, measured by the monitor) and L_s(t) = ``stage["train_loss"]``:

    G_s        = w_s * g_s                                   norm of the weighted stage gradient
    G_bar      = mean_s G_s
    Ltilde_s   = L_s(t) / L_s(0)                             inverse training rate
    r_s        = Ltilde_s / mean_r Ltilde_r                  relative inverse training rate
    L_grad     = sum_s | G_s - G_bar * r_s^alpha |           target treated as a constant (paper)
    dL_grad/dw_s = sign(G_s - G_bar * r_s^alpha) * g_s
    w_s        <- max(w_s - lr * dL_grad/dw_s, w_min),  then renormalised to sum_s w_s = S

and the controller returns w / S (weights on the simplex; the paper's renormalisation to sum S is the
same up to that constant). Stages that train slowly (r_s > 1) are pushed toward larger gradient norms.
Differences from the paper: the weights take one step per control step (not per optimiser step) and
the gradient norm is the monitor's head-gradient norm on a probe set, not the last shared layer's
gradient on the training batch. L_s(0) is the loss at the start of the run (the initial state).
"""

from __future__ import annotations

import numpy as np

from metacurr.controllers.base import Controller
from metacurr.errors import ConfigError
from metacurr.monitors.state import LearningState
from metacurr.weights import normalize

EPS = 1e-12


class GradNorm(Controller):
    """GradNorm from monitored per-stage head-gradient norms and loss ratios.

    Args:
        alpha: asymmetry (restoring-force strength); the paper uses 0.12 - 3, 1.5 is a common default.
        lr: step size on the weights (on the sum-to-S scale).
        w_min: smallest weight on the sum-to-S scale (keeps every stage alive and the weights positive).
    """

    name = "gradnorm"

    def __init__(self, alpha: float = 1.5, lr: float = 0.1, w_min: float = 0.01):
        if not alpha >= 0:
            raise ConfigError(f"gradnorm alpha must be >= 0, got {alpha!r}")
        if not lr > 0:
            raise ConfigError(f"gradnorm lr must be positive, got {lr!r}")
        if not (0 <= w_min < 1):
            raise ConfigError(f"gradnorm w_min must be in [0, 1), got {w_min!r}")
        self.alpha, self.lr, self.w_min = float(alpha), float(lr), float(w_min)

    def reset(self, n_stages: int, rng: np.random.Generator) -> np.ndarray:
        w = super().reset(n_stages, rng)
        self._w = np.ones(self.n_stages)  # sum-to-S scale, as in the paper
        self._loss0: np.ndarray | None = None
        return w

    def update(self, state: LearningState) -> np.ndarray:
        loss = np.clip(np.nan_to_num(np.asarray(state.stage["train_loss"], dtype=np.float64), nan=0.0, posinf=1e6), 0.0, 1e6)
        g = np.clip(np.nan_to_num(np.asarray(state.stage["grad_norm"], dtype=np.float64), nan=0.0, posinf=1e6), 0.0, 1e6)
        if self._loss0 is None:
            self._loss0 = loss.copy()
        # A stage that started at (near) zero loss has no meaningful training rate: ratio 1.
        ltilde = np.where(self._loss0 > EPS, loss / np.maximum(self._loss0, EPS), 1.0)
        r = ltilde / max(float(ltilde.mean()), EPS) if ltilde.mean() > EPS else np.ones_like(ltilde)
        big_g = self._w * g
        target = big_g.mean() * np.power(np.clip(r, 0.0, 1e3), self.alpha)
        grad = np.sign(big_g - target) * g
        # Normalise the step by the mean gradient norm so lr means the same on every task's scale.
        step = self.lr * grad / max(float(g.mean()), EPS)
        w = np.maximum(self._w - step, self.w_min)
        w = np.nan_to_num(w, nan=1.0, posinf=1.0)
        self._w = w * self.n_stages / w.sum()
        self.weights = normalize(self._w)
        return self.weights.copy()
