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

For stage s at control step t, each indicator x in {entropy e, log gradient variance log v} has a
running baseline (EMA mean mu_x and EMA std sd_x, rate rho) taken *before* this step's update, and a
spike is a departure of more than kappa baseline standard deviations:

    z_x,s         = (x_s - mu_x,s) / (sd_x,s + eps)
    spike_s       = max(0, z_e,s - kappa)                                     entropy spike
    instability_s = max(0, z_logv,s - kappa)                                  gradient instability
    stability_s   = exp(-|Δconf_s| / tau_c) * exp(-drift_s / tau_d)           stable confidence, low drift
    u_s           = alpha * spike_s + gamma * instability_s - lam * stability_s
    target_s      ∝ w_{t-1,s} * exp(eta * (u_s - mean_r u_r))
    w_t           = WeightMapping.smooth(w_{t-1}, target)                     EMA, |Δw| <= max_step, w >= floor

A steady trend (e.g. the slowly rising gradient variance of a stage whose noisy labels are being
memorised) is absorbed by the baseline and is not a spike; a sudden rise is. The baseline starts with
a spread of ``spread0`` times the first value, so the first steps of training are not all spikes.
"""

from __future__ import annotations

import numpy as np

from metacurr.controllers.base import Controller
from metacurr.errors import ConfigError
from metacurr.monitors.state import LearningState
from metacurr.weights import WeightMapping

EPS = 1e-8


class Heuristic(Controller):
    """The paper's smoothed controller; see the module docstring for the equations.

    Args:
        alpha: weight of the entropy-spike term.
        gamma: weight of the gradient-instability term.
        lam: weight of the stability term (stable confidence and low drift).
        eta: log-space gain of the score.
        rho: EMA rate of the entropy / gradient-variance baselines (mean and spread).
        kappa: spike threshold, in baseline standard deviations.
        spread0: initial baseline spread as a fraction of the first value.
        tau_c: confidence-change scale of "stable".
        tau_d: drift scale of "low drift" (1 - CKA per control step is typically 1e-3 to 1e-1).
        smoothing, max_step, floor: the shared `WeightMapping` (smoothing=1 disables smoothing).
        use_entropy, use_grad, use_stability: switch single indicators off (ablations).
    """

    name = "heuristic"

    def __init__(
        self,
        alpha: float = 1.0,
        gamma: float = 1.0,
        lam: float = 1.0,
        eta: float = 1.0,
        rho: float = 0.3,
        kappa: float = 1.0,
        spread0: float = 0.25,
        tau_c: float = 0.02,
        tau_d: float = 0.1,
        smoothing: float = 0.5,
        max_step: float = 0.15,
        floor: float = 0.02,
        use_entropy: bool = True,
        use_grad: bool = True,
        use_stability: bool = True,
    ):
        if not eta > 0:
            raise ConfigError(f"heuristic eta must be positive, got {eta!r}")
        if not (0 < rho <= 1):
            raise ConfigError(f"heuristic rho must be in (0, 1], got {rho!r}")
        for nm, v in (("tau_c", tau_c), ("tau_d", tau_d), ("spread0", spread0)):
            if not v > 0:
                raise ConfigError(f"heuristic {nm} must be positive, got {v!r}")
        if not kappa >= 0:
            raise ConfigError(f"heuristic kappa must be >= 0, got {kappa!r}")
        self.alpha, self.gamma, self.lam, self.eta = float(alpha), float(gamma), float(lam), float(eta)
        self.rho, self.kappa, self.spread0 = float(rho), float(kappa), float(spread0)
        self.tau_c, self.tau_d = float(tau_c), float(tau_d)
        self.use_entropy, self.use_grad, self.use_stability = bool(use_entropy), bool(use_grad), bool(use_stability)
        self.mapping = WeightMapping(eta=1.0, smoothing=smoothing, max_step=max_step, floor=floor)
        self.smoothing, self.max_step, self.floor = float(smoothing), float(max_step), float(floor)

    def reset(self, n_stages: int, rng: np.random.Generator) -> np.ndarray:
        w = super().reset(n_stages, rng)
        self._base: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._prev_conf: np.ndarray | None = None
        self.last_terms: dict[str, np.ndarray] = {}
        return w

    def _zscore(self, key: str, x: np.ndarray) -> np.ndarray:
        """Departure of x from its running baseline in baseline std units; then update the baseline."""
        if key not in self._base:
            # Until a baseline exists nothing is a spike.
            self._base[key] = (x.copy(), (self.spread0 * np.abs(x)) ** 2 + EPS)
            return np.zeros_like(x)
        mu, var = self._base[key]
        z = (x - mu) / (np.sqrt(var) + EPS)
        dev = x - mu
        self._base[key] = (mu + self.rho * dev, (1 - self.rho) * (var + self.rho * dev**2))
        return z

    def scores(self, state: LearningState) -> np.ndarray:
        """The centred score u_s - mean(u) (and update the baselines)."""
        ent = np.asarray(state.stage["entropy"], dtype=np.float64)
        logv = np.log(np.maximum(np.asarray(state.stage["grad_var"], dtype=np.float64), 0.0) + EPS)
        conf = np.asarray(state.stage["confidence"], dtype=np.float64)
        drift = np.maximum(np.asarray(state.stage["drift"], dtype=np.float64), 0.0)
        spike = np.maximum(0.0, self._zscore("entropy", ent) - self.kappa)
        instab = np.maximum(0.0, self._zscore("logv", logv) - self.kappa)
        if self._prev_conf is None:
            stable = np.ones_like(conf)
        else:
            dconf = np.abs(conf - self._prev_conf)
            stable = np.exp(-dconf / self.tau_c) * np.exp(-drift / self.tau_d)
        self._prev_conf = conf.copy()
        u = (
            self.alpha * spike * self.use_entropy
            + self.gamma * instab * self.use_grad
            - self.lam * stable * self.use_stability
        )
        self.last_terms = {"spike": spike, "instability": instab, "stability": stable}
        return np.nan_to_num(u - u.mean(), nan=0.0, posinf=0.0, neginf=0.0)

    def update(self, state: LearningState) -> np.ndarray:
        u = np.clip(self.scores(state), -20.0, 20.0)
        target = self.weights * np.exp(self.eta * u)
        self.weights = self.mapping.smooth(self.weights, target)
        return self.weights.copy()
