"""The bounded, smoothed mapping from proposals to stage weights, shared by every consumer.

The Gymnasium environment, the `PolicyController` (a saved PPO policy), `random-policy` and the paper's
heuristic all move weights through `WeightMapping`, so a learned policy behaves identically inside and
outside the environment and every controller obeys the same smoothing, step bound and floor.

Given previous weights ``w`` and an action ``a`` in [-1, 1]^S, the action proposes a target:

    mode "relative":  target = normalize(w * exp(eta * a))       (multiplicative move from w; moves accumulate)
    mode "absolute":  target = softmax(eta * a)                  (the action names the mix; a = 0 is uniform)

and every mode then moves toward it the same way:

    floored  = f + (1 - S f) * target                             (no stage is ever forgotten)
    delta    = beta * (floored - w)                               (temporal smoothing, the paper's feedback control)
    w'       = w + delta * min(1, max_step / max_s |delta_s|)     (no abrupt jumps; stays on the simplex)
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields

import numpy as np

from metacurr.controllers.base import normalize
from metacurr.errors import ConfigError

#: How an action proposes target weights (see the module docstring).
MODES = ("relative", "absolute")


@dataclass(frozen=True)
class WeightMapping:
    """Parameters of the shared action -> weight mapping.

    Attributes:
        eta: log-space step per unit action.
        smoothing: EMA factor beta in (0, 1]; 1 = no smoothing.
        max_step: largest change of any stage weight per control step.
        floor: smallest stage weight (capped at half of uniform so it is always feasible).
        mode: ``"relative"`` (the action is a log-space move from the current weights; a constant
            action keeps pushing) or ``"absolute"`` (the action names the target mix, ``softmax(eta a)``;
            a zero action means uniform, and the most extreme mix is bounded by ``eta``). Why both
            exist, and what each does to a learned policy: ``experiments/design.yaml``.
    """

    eta: float = 1.0
    smoothing: float = 0.5
    max_step: float = 0.15
    floor: float = 0.02
    mode: str = "relative"

    def __new__(cls, *args, **kwargs):
        # Configs build mappings with WeightMapping(**mapping_dict) (env.mapping, bundle manifests): an
        # unknown key is a one-line ConfigError naming the valid keys, not a TypeError traceback.
        valid = [f.name for f in fields(cls)]
        for k in kwargs:
            if k not in valid:
                raise ConfigError(f"unknown weight mapping key {k!r}; valid choices: {', '.join(valid)}")
        return super().__new__(cls)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown weight mapping mode {self.mode!r}; valid choices: {', '.join(MODES)}")
        for f in fields(self):
            if f.name == "mode":
                continue
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v):
                raise ConfigError(f"weight mapping {f.name} must be a finite number, got {v!r}")
        if not (self.eta > 0 and 0 < self.smoothing <= 1 and self.max_step > 0 and 0 <= self.floor < 1):
            raise ConfigError(
                f"invalid weight mapping {asdict(self)}; need eta > 0, 0 < smoothing <= 1, max_step > 0, 0 <= floor < 1"
            )

    def smooth(self, prev: np.ndarray, target: np.ndarray) -> np.ndarray:
        """Move from ``prev`` toward ``target`` with smoothing, a step bound and a floor.

        The floor is put into the target exactly (``f + (1 - S f) * target``); the step is then scaled
        as a whole, so the result stays on the simplex and every |Δw_s| <= max_step. Since the result
        is a convex combination of ``prev`` and the floored target, it keeps the floor once ``prev`` does.
        """
        prev = normalize(prev)
        n = len(prev)
        floor = min(self.floor, 0.5 / n)
        target = floor + (1.0 - n * floor) * normalize(target)
        delta = self.smoothing * (target - prev)
        biggest = np.abs(delta).max()
        if biggest > self.max_step:
            delta *= self.max_step / biggest
        return normalize(prev + delta)

    def apply(self, prev: np.ndarray, action: np.ndarray) -> np.ndarray:
        """Map an action in [-1, 1]^S to new weights; NaN -> 0 and +-inf -> +-1 (clipped)."""
        a = sanitize_action(action, len(prev))
        return self.smooth(prev, self.target(prev, a))

    def target(self, prev: np.ndarray, a: np.ndarray) -> np.ndarray:
        """The (unnormalised) target proposed by a sanitised action ``a`` from weights ``prev``."""
        if self.mode == "absolute":
            return np.exp(self.eta * (a - a.max()))
        return normalize(prev) * np.exp(self.eta * a)

    def to_dict(self) -> dict:
        return asdict(self)


def sanitize_action(action: np.ndarray, n: int) -> np.ndarray:
    """Flatten, check the length, replace NaN by 0 and clip to [-1, 1]."""
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape[0] < n:
        raise ConfigError(f"action has {a.shape[0]} entries for {n} stages")
    a = a[:n]
    return np.clip(np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
