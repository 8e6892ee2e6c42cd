"""Stage-weight arithmetic, in one place: the simplex projection and the bounded, smoothed mapping
from proposals (actions, controller targets) to stage weights, for one run and for N runs at once.

Every consumer moves weights through this module: the controllers (`normalize`, `WeightMapping`), the
Gymnasium environment and the `PolicyController` (`WeightMapping.apply`), and the batched engine's
vector env (`WeightMapping.apply_rows`, N runs per call). So a learned policy behaves identically
inside and outside the environment, and every controller obeys the same smoothing, step bound and floor.

Given previous weights ``w`` and an action ``a`` in [-1, 1]^S, the action proposes a target:

    mode "relative":  target = normalize(w * exp(eta * a))       (multiplicative move from w; moves accumulate)
    mode "absolute":  target = softmax(eta * a)                  (the action names the mix; a = 0 is uniform)

and every mode then moves toward it the same way:

    floored  = f + (1 - S f) * target                             (no stage is ever forgotten)
    delta    = beta * (floored - w)                               (temporal smoothing, the paper's feedback control)
    w'       = w + delta * min(1, max_step / max_s |delta_s|)     (no abrupt jumps; stays on the simplex)

The row-wise forms (`normalize_rows`, `WeightMapping.apply_rows`) run the same element-wise operations
and sums over S entries, so row i equals the single-run result bitwise (``tests/envs/test_batched.py``).
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass, fields

import numpy as np

from metacurr.errors import ConfigError

#: How an action proposes target weights (see the module docstring).
MODES = ("relative", "absolute")


def normalize(w: np.ndarray) -> np.ndarray:
    """Project non-negative weights onto the simplex; all-zero or non-finite input -> uniform."""
    w = np.nan_to_num(np.asarray(w, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    w = np.clip(w, 0.0, None)
    total = w.sum()
    if not np.isfinite(total) or total <= 0:
        return np.full(len(w), 1.0 / len(w))
    return w / total


def normalize_rows(w: np.ndarray) -> np.ndarray:
    """`normalize` per row of an (N, S) array."""
    w = np.clip(np.nan_to_num(np.asarray(w, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0), 0.0, None)
    total = w.sum(axis=1)
    bad = ~np.isfinite(total) | (total <= 0)
    out = w / np.where(bad, 1.0, total)[:, None]
    if bad.any():
        out[bad] = 1.0 / w.shape[1]
    return out


def sanitize_action(action: np.ndarray, n: int) -> np.ndarray:
    """Flatten, check the length, replace NaN by 0 and clip to [-1, 1]."""
    a = np.asarray(action, dtype=np.float64).reshape(-1)
    if a.shape[0] < n:
        raise ConfigError(f"action has {a.shape[0]} entries for {n} stages")
    a = a[:n]
    return np.clip(np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)


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

    def apply_rows(self, prev: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """`apply` for N runs at once: (N, S) previous weights and actions -> (N, S) new weights.

        The same operations element for element (`target`, `smooth`) and row sums over S entries, so
        row i equals ``apply(prev[i], actions[i])`` bitwise.
        """
        a = np.clip(np.nan_to_num(np.asarray(actions, dtype=np.float64), nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        p = normalize_rows(prev)
        if self.mode == "absolute":
            target = np.exp(self.eta * (a - a.max(axis=1, keepdims=True)))
        else:
            target = p * np.exp(self.eta * a)
        n = prev.shape[1]
        floor = min(self.floor, 0.5 / n)
        target = floor + (1.0 - n * floor) * normalize_rows(target)
        delta = self.smoothing * (target - p)
        biggest = np.abs(delta).max(axis=1)
        big = biggest > self.max_step
        if big.any():
            delta[big] *= (self.max_step / biggest[big])[:, None]
        return normalize_rows(p + delta)

    def to_dict(self) -> dict:
        return asdict(self)


def map_weights(mapping: WeightMapping, prev: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """``mapping.apply_rows(prev, actions)``: the mapping for N runs at once."""
    return mapping.apply_rows(prev, actions)


__all__ = ["MODES", "WeightMapping", "map_weights", "normalize", "normalize_rows", "sanitize_action"]
