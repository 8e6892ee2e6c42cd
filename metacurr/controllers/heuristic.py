"""`heuristic`: the paper's smoothed feedback controller (Cartright & Bramhurst, "Dynamic Loss
Rebalancing for Sequential Curriculum Learning", sections 2-3).

The rule reads *changes* of the learning-state indicators, not their levels. A stage whose confidence
is stable and whose representation drift is low loses weight ("preventing over-reinforcement of
already-learned patterns"); a stage showing an entropy *spike* (entropy above its own running baseline)
or gradient instability (gradient variance above its own running baseline) gains weight. Weights move
through the shared smoothed, step-bounded, floored `WeightMapping` ("temporal smoothing ... prevents
oscillatory weight adjustments").

Reading levels instead fails on label noise: a noisy-label stage keeps a high entropy forever and a
level-driven rule keeps training on the noise. Here such a stage's entropy is high but *flat*, so it
shows no spike, its confidence is stable, and it loses weight.

For stage s at control step t, with running baselines (EMA, rate rho) ē_s of the entropy e_s and
v̄_s of the head-gradient variance v_s, both taken *before* this step's update:

    spike_s       = max(0, (e_s - ē_s) / (ē_s + eps))                       entropy spike
    instability_s = max(0, log((v_s + eps) / (v̄_s + eps)))                  gradient instability
    stability_s   = exp(-|Δconf_s| / tau_c) * exp(-drift_s / tau_d)          stable confidence, low drift
    u_s           = alpha * spike_s + gamma * instability_s - lam * stability_s
    target_s      ∝ w_{t-1,s} * exp(eta * (u_s - mean_r u_r))
    w_t           = WeightMapping.smooth(w_{t-1}, target)                     EMA, |Δw| <= max_step, w >= floor

then ē_s <- (1 - rho) ē_s + rho e_s and v̄_s likewise.
"""

from __future__ import annotations

import numpy as np

from metacurr.controllers.base import Controller
from metacurr.controllers.mapping import WeightMapping
from metacurr.errors import ConfigError
from metacurr.monitors.state import LearningState

EPS = 1e-8


class Heuristic(Controller):
    """The paper's smoothed controller; see the module docstring for the equations.

    Args:
        alpha: weight of the entropy-spike term.
        gamma: weight of the gradient-instability term.
        lam: weight of the stability term (stable confidence and low drift).
        eta: log-space gain of the score.
        rho: EMA rate of the entropy / gradient-variance baselines.
        tau_c: confidence-change scale of "stable".
        tau_d: drift scale of "low drift".
        smoothing, max_step, floor: the shared `WeightMapping` (smoothing=1 disables smoothing).
        use_entropy, use_grad, use_stability: switch single indicators off (ablations).
    """

    name = "heuristic"

    def __init__(
        self,
        alpha: float = 1.0,
        gamma: float = 0.5,
        lam: float = 1.0,
        eta: float = 1.0,
        rho: float = 0.3,
        tau_c: float = 0.02,
        tau_d: float = 0.05,
        smoothing: float = 0.5,
        max_step: float = 0.15,
        floor: float = 0.02,
        use_entropy: bool = True,
        use_grad: bool = True,
        use_stability: bool = True,
    ):
        for nm, v in (("eta", eta), ("tau_c", tau_c), ("tau_d", tau_d)):
            if not v > 0:
                raise ConfigError(f"heuristic {nm} must be positive, got {v!r}")
        if not (0 < rho <= 1):
            raise ConfigError(f"heuristic rho must be in (0, 1], got {rho!r}")
        self.alpha, self.gamma, self.lam, self.eta = float(alpha), float(gamma), float(lam), float(eta)
        self.rho, self.tau_c, self.tau_d = float(rho), float(tau_c), float(tau_d)
        self.use_entropy, self.use_grad, self.use_stability = bool(use_entropy), bool(use_grad), bool(use_stability)
        self.mapping = WeightMapping(eta=1.0, smoothing=smoothing, max_step=max_step, floor=floor)
        self.smoothing, self.max_step, self.floor = float(smoothing), float(max_step), float(floor)

    def reset(self, n_stages: int, rng: np.random.Generator) -> np.ndarray:
        w = super().reset(n_stages, rng)
        self._ent_base: np.ndarray | None = None
        self._var_base: np.ndarray | None = None
        self._prev_conf: np.ndarray | None = None
        self.last_terms: dict[str, np.ndarray] = {}
        return w

    def scores(self, state: LearningState) -> np.ndarray:
        """The centred score u_s - mean(u) (and update the baselines)."""
        ent = np.asarray(state.stage["entropy"], dtype=np.float64)
        var = np.asarray(state.stage["grad_var"], dtype=np.float64)
        conf = np.asarray(state.stage["confidence"], dtype=np.float64)
        drift = np.asarray(state.stage["drift"], dtype=np.float64)
        if self._ent_base is None:
            self._ent_base, self._var_base, self._prev_conf = ent.copy(), var.copy(), conf.copy()
        spike = np.maximum(0.0, (ent - self._ent_base) / (self._ent_base + EPS))
        instab = np.maximum(0.0, np.log((var + EPS) / (self._var_base + EPS)))
        dconf = np.abs(conf - self._prev_conf)
        stable = np.exp(-dconf / self.tau_c) * np.exp(-drift / self.tau_d)
        u = (
            self.alpha * spike * self.use_entropy
            + self.gamma * instab * self.use_grad
            - self.lam * stable * self.use_stability
        )
        self._ent_base = (1 - self.rho) * self._ent_base + self.rho * ent
        self._var_base = (1 - self.rho) * self._var_base + self.rho * var
        self._prev_conf = conf.copy()
        self.last_terms = {"spike": spike, "instability": instab, "stability": stable}
        return np.nan_to_num(u - u.mean(), nan=0.0, posinf=0.0, neginf=0.0)

    def update(self, state: LearningState) -> np.ndarray:
        u = np.clip(self.scores(state), -20.0, 20.0)
        target = self.weights * np.exp(self.eta * u)
        self.weights = self.mapping.smooth(self.weights, target)
        return self.weights.copy()
