"""Masked / open-loop controllers: what a controller gains from each indicator it reads.

`MaskedController` wraps any controller and *freezes* chosen `LearningState` features at the values of
the first state it sees, so the wrapped controller keeps running but no longer observes how those
features move. Freezing (rather than zeroing) keeps the inputs on the scale a learned policy was
trained on. ``OPEN_LOOP`` masks every feature except the stage weights and the progress clock: the
controller then acts open-loop, as a fixed schedule of the control step.

Used by ablation variants (``mask: [entropy, drift]`` or ``mask: open-loop`` in
``experiments/ablations.yaml``) and by ``--controllers open-loop:NAME``; the learned-policy
masked / open-loop ablation plugs into the same hook.
"""

from __future__ import annotations

import numpy as np

from metacurr.controllers.base import Controller
from metacurr.errors import ConfigError
from metacurr.monitors.state import GLOBAL_FEATURES, STAGE_FEATURES, LearningState

#: Features an open-loop controller still sees.
OPEN_LOOP_KEEP = ("weight", "progress")
OPEN_LOOP = "open-loop"


def resolve_mask(mask: str | list[str] | None) -> list[str]:
    """Feature names to freeze: a list of stage/global feature names, or ``"open-loop"``."""
    if mask is None:
        return []
    if mask == OPEN_LOOP:
        return [f for f in (*STAGE_FEATURES, *GLOBAL_FEATURES) if f not in OPEN_LOOP_KEEP]
    if isinstance(mask, str) or not isinstance(mask, list):
        raise ConfigError(f"mask must be a list of feature names or {OPEN_LOOP!r}, got {mask!r}")
    valid = [*STAGE_FEATURES, *GLOBAL_FEATURES]
    for f in mask:
        if f not in valid:
            raise ConfigError(f"unknown mask feature {f!r}; valid choices: {', '.join(valid)}, {OPEN_LOOP}")
    return list(mask)


class MaskedController(Controller):
    """Runs ``inner`` on states whose ``features`` are frozen at their first observed values.

    Args:
        inner: the wrapped controller.
        features: names from `STAGE_FEATURES` / `GLOBAL_FEATURES` (see `resolve_mask`).
    """

    def __init__(self, inner: Controller, features: list[str]):
        self.inner = inner
        self.features = resolve_mask(features)
        self.name = f"masked:{getattr(inner, 'name', type(inner).__name__)}"

    def check_stages(self, n_stages: int) -> None:
        self.inner.check_stages(n_stages)

    def reset(self, n_stages: int, rng: np.random.Generator) -> np.ndarray:
        self.n_stages = int(n_stages)
        self._frozen: LearningState | None = None
        self.weights = self.inner.reset(n_stages, rng)
        return self.weights.copy()

    def mask(self, state: LearningState) -> LearningState:
        """A copy of ``state`` with the masked features replaced by their first observed values."""
        if self._frozen is None:
            self._frozen = LearningState(state.step, state.n_stages,
                                         {k: np.array(v, dtype=np.float64) for k, v in state.stage.items()},
                                         dict(state.glob))
        stage = {k: (self._frozen.stage[k].copy() if k in self.features else np.array(v, dtype=np.float64))
                 for k, v in state.stage.items()}
        glob = {k: (self._frozen.glob[k] if k in self.features else v) for k, v in state.glob.items()}
        return LearningState(state.step, state.n_stages, stage, glob)

    def update(self, state: LearningState) -> np.ndarray:
        self.weights = self.inner.update(self.mask(state))
        return np.asarray(self.weights).copy()

    def after_step(self, state: LearningState) -> None:
        self.inner.after_step(self.mask(state))

    def config(self) -> dict:
        return {"inner": self.inner.config(), "mask": list(self.features)}
