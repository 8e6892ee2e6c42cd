"""`dwa`: Dynamic Weight Average (Liu, Johns & Davison, "End-to-End Multi-Task Learning with
Attention", CVPR 2019, eq. 7), with curriculum stages in the role of tasks.

A stage whose training loss falls more slowly gets more weight. With the per-stage mean mini-batch
training loss L_s(t) of control step t (``LearningState.stage["train_loss"]``):

    r_s(t-1) = L_s(t-1) / L_s(t-2)                                   relative descending rate
    w_s(t)   = exp(r_s(t-1) / T) / sum_r exp(r_r(t-1) / T)           temperature T

The paper scales by the number of tasks K so the weights sum to K; here they sum to 1 (the loss is
``sum_s w_s L_s``), which only rescales the learning rate uniformly. As in the paper, the first two
control steps (no ratio yet) use uniform weights. A non-positive or non-finite loss gives ratio 1
("no information"), and ratios are clipped to [0, ``max_ratio``] so a single exploding stage cannot
make the softmax overflow.
"""

from __future__ import annotations

import numpy as np

from metacurr.controllers.base import Controller
from metacurr.errors import ConfigError
from metacurr.monitors.state import LearningState
from metacurr.weights import normalize


class DWA(Controller):
    """Dynamic Weight Average over per-stage training-loss ratios.

    Args:
        temperature: softness T of the softmax (large T -> uniform); the paper uses T = 2.
        max_ratio: upper clip of the loss ratio r_s.
    """

    name = "dwa"

    def __init__(self, temperature: float = 2.0, max_ratio: float = 10.0):
        if not temperature > 0:
            raise ConfigError(f"dwa temperature must be positive, got {temperature!r}")
        if not max_ratio > 0:
            raise ConfigError(f"dwa max_ratio must be positive, got {max_ratio!r}")
        self.temperature = float(temperature)
        self.max_ratio = float(max_ratio)

    def reset(self, n_stages: int, rng: np.random.Generator) -> np.ndarray:
        w = super().reset(n_stages, rng)
        self._history: list[np.ndarray] = []
        return w

    def update(self, state: LearningState) -> np.ndarray:
        loss = np.asarray(state.stage["train_loss"], dtype=np.float64)
        self._history = (self._history + [loss.copy()])[-2:]
        if len(self._history) < 2:
            self.weights = np.full(self.n_stages, 1.0 / self.n_stages)
            return self.weights.copy()
        prev, cur = self._history
        ok = np.isfinite(prev) & np.isfinite(cur) & (prev > 0) & (cur >= 0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ratio = np.where(ok, cur / np.where(ok, prev, 1.0), 1.0)
        ratio = np.clip(np.nan_to_num(ratio, nan=1.0, posinf=self.max_ratio), 0.0, self.max_ratio)
        z = ratio / self.temperature
        self.weights = normalize(np.exp(z - z.max()))
        return self.weights.copy()
