"""The one interface behind every way of choosing stage weights."""

from __future__ import annotations

import numpy as np

from metacurr.monitors.state import LearningState
from metacurr.weights import normalize

__all__ = ["Controller", "normalize"]


class Controller:
    """Chooses per-stage loss weights from the learner's state.

    The run loop is::

        w = ctrl.reset(n_stages, rng)            # before training
        state = run.reset(w)
        for t in range(T):
            w = ctrl.update(state)               # weights for the next control step
            state = run.step(w)                  # k inner steps, then the monitors
            ctrl.after_step(state)               # learn from the step's result (optional)

    Weights are non-negative and sum to 1 (the loss is ``sum_s w_s L_s``; uniform = mean stage loss).
    Subclasses set ``name`` and override `update` (and `reset` / `after_step` when they keep state).
    SB3-style `predict` lets one evaluation loop serve learned and hand-written controllers alike.
    """

    name: str = "base"
    #: What tells two controllers of the same name and kwargs apart: a policy bundle's manifest checksum
    #: (a bundle retrained in place is another controller); None for rule-based controllers.
    identity: str | None = None

    def reset(self, n_stages: int, rng: np.random.Generator) -> np.ndarray:
        """Start a new run with ``n_stages`` stages; return the initial weights."""
        self.n_stages = int(n_stages)
        self.rng = rng
        self.weights = np.full(self.n_stages, 1.0 / self.n_stages)
        return self.weights.copy()

    def check_stages(self, n_stages: int) -> None:
        """Raise `ConfigError` if this controller cannot serve ``n_stages`` stages (default: any count).

        Called before any work starts (``metacurr train``, ``metacurr evaluate``), so a policy trained for
        fewer stage slots is a one-line usage error rather than a failure mid-run.
        """

    def update(self, state: LearningState) -> np.ndarray:
        """Return the weights for the next control step."""
        raise NotImplementedError

    def after_step(self, state: LearningState) -> None:
        """Hook called with the state that resulted from the last weights (default: nothing)."""

    def predict(self, observation, state=None, episode_start=None, deterministic: bool = True):
        """SB3-shaped: a `LearningState` vector (or a LearningState) -> (weights, None)."""
        ls = observation if isinstance(observation, LearningState) else LearningState.from_vector(observation, self.n_stages)
        return self.update(ls), None

    def config(self) -> dict:
        """JSON-serialisable parameters (for run configs and reports)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and isinstance(v, (int, float, str, bool))}
