"""`bandit`: a learning-progress teacher (TSCL: Matiisen, Oliver, Cohen & Schulman, "Teacher-Student
Curriculum Learning", IEEE TNNLS 2019 / arXiv 2017), with curriculum stages as the teacher's tasks.

The teacher favours the stages on which the student is currently making the most progress, in either
direction (a rising loss signals forgetting and also earns attention). Progress is read from the
probe-set loss L_s(t) of every stage, which the monitor measures after each control step; the teacher
learns from it in `after_step`.

``algorithm="window"`` (TSCL's *Window* algorithm, Boltzmann policy; default). Keep the last ``window``
probe losses of each stage and fit a least-squares line per stage:

    Q_s   = | slope of L_s over the last `window` control steps |           learning progress
    Qn_s  = Q_s / (max_r Q_r + eps)                                           scale-free
    p_s   = (1 - eps_explore) * softmax(Qn / tau)_s + eps_explore / S
    w_s   = p_s

TSCL samples one task per training batch from p; every inner step here draws a mini-batch from every
stage, so the expectation of that sampling, ``w = p``, is used as the loss weights. Every stage is then
trained and measured each step (full information).

``algorithm="exp3"`` (TSCL's bandit formulation with Exp3, Auer et al. 2002; partial information). At
each control step sample one stage a ~ p from the controller rng and train it alone (w = onehot(a));
after the step the reward is its absolute learning progress, rescaled to [0, 1] by the largest progress
seen so far:

    p_s   = (1 - gamma) * exp(h_s) / sum_r exp(h_r) + gamma / S
    x_a   = | L_a(t) - L_a(t-1) | / max progress so far                     in [0, 1]
    h_a  <- h_a + gamma * (x_a / p_a) / S                                     importance-weighted

Only the chosen stage's progress is credited, as in a bandit.
"""

from __future__ import annotations

import numpy as np

from metacurr.controllers.base import Controller
from metacurr.errors import ConfigError, choices_error
from metacurr.monitors.state import LearningState
from metacurr.weights import normalize

ALGORITHMS = ("window", "exp3")
EPS = 1e-12


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.nan_to_num(np.asarray(z, dtype=np.float64), nan=0.0, posinf=1e6, neginf=-1e6)
    e = np.exp(z - z.max())
    return e / e.sum()


def window_slopes(history: np.ndarray) -> np.ndarray:
    """Least-squares slope per column of ``history`` (shape (T, S)) against time 0..T-1."""
    t = np.arange(len(history), dtype=np.float64)
    t = t - t.mean()
    denom = float((t**2).sum())
    if denom <= 0:
        return np.zeros(history.shape[1])
    centred = history - history.mean(0, keepdims=True)
    return (t[:, None] * centred).sum(0) / denom


class Bandit(Controller):
    """TSCL learning-progress teacher; see the module docstring for both algorithms.

    Args:
        algorithm: ``"window"`` (TSCL Window + Boltzmann, weights = the sampling distribution) or
            ``"exp3"`` (one sampled stage per control step, Exp3 update).
        window: number of recent probe losses the slope is fitted to (window algorithm).
        tau: Boltzmann temperature on the normalised progress (window algorithm).
        explore: uniform exploration share: eps_explore (window) or gamma (exp3), in [0, 1].
    """

    name = "bandit"

    def __init__(self, algorithm: str = "window", window: int = 5, tau: float = 0.5, explore: float = 0.1):
        if algorithm not in ALGORITHMS:
            raise choices_error("bandit algorithm", algorithm, ALGORITHMS)
        if not (isinstance(window, int) and window >= 2):
            raise ConfigError(f"bandit window must be an integer >= 2, got {window!r}")
        if not tau > 0:
            raise ConfigError(f"bandit tau must be positive, got {tau!r}")
        if not (0 <= explore <= 1):
            raise ConfigError(f"bandit explore must be in [0, 1], got {explore!r}")
        if algorithm == "exp3" and explore == 0:
            raise ConfigError("bandit explore must be > 0 for exp3 (importance weights divide by p)")
        self.algorithm, self.window, self.tau, self.explore = algorithm, int(window), float(tau), float(explore)

    def reset(self, n_stages: int, rng: np.random.Generator) -> np.ndarray:
        w = super().reset(n_stages, rng)
        self._history: list[np.ndarray] = []
        self._last: LearningState | None = None
        self._h = np.zeros(self.n_stages)  # Exp3 log-weights
        self._pending: tuple[int, float, float] | None = None  # (arm, its loss before, its probability)
        self._max_progress = 0.0
        self.probs = np.full(self.n_stages, 1.0 / self.n_stages)
        return w

    @staticmethod
    def _loss(state: LearningState) -> np.ndarray:
        return np.clip(np.nan_to_num(np.asarray(state.stage["loss"], dtype=np.float64), nan=0.0, posinf=1e6, neginf=-1e6), -1e6, 1e6)

    def _observe(self, state: LearningState) -> None:
        # update() and after_step() may both see the same state; count it once.
        if state is self._last:
            return
        self._last = state
        loss = self._loss(state)
        self._history = (self._history + [loss])[-self.window :]
        if self.algorithm == "exp3" and self._pending is not None:
            arm, before, p = self._pending
            progress = abs(float(loss[arm]) - before)
            self._max_progress = max(self._max_progress, progress)
            x = progress / self._max_progress if self._max_progress > EPS else 0.0
            self._h[arm] += self.explore * (x / max(p, EPS)) / self.n_stages
            self._h -= self._h.max()  # shift-invariant; keeps exp() finite over long runs
            self._pending = None

    def after_step(self, state: LearningState) -> None:
        self._observe(state)

    def update(self, state: LearningState) -> np.ndarray:
        self._observe(state)
        if self.algorithm == "window":
            q = np.abs(window_slopes(np.stack(self._history))) if len(self._history) >= 2 else np.zeros(self.n_stages)
            qn = q / (q.max() + EPS)
            self.probs = (1.0 - self.explore) * _softmax(qn / self.tau) + self.explore / self.n_stages
            self.weights = normalize(self.probs)
            return self.weights.copy()
        self.probs = normalize((1.0 - self.explore) * _softmax(self._h) + self.explore / self.n_stages)
        arm = int(self.rng.choice(self.n_stages, p=self.probs))
        self._pending = (arm, float(self._loss(state)[arm]), float(self.probs[arm]))
        self.weights = np.eye(self.n_stages)[arm]
        return self.weights.copy()
