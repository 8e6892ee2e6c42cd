"""Observation layout version 3: the run observed relative to itself (scale-free indicators).

An MLP on MNIST-1D and a GRU on sequences produce losses, gradient norms and drifts at different
absolute scales; a policy that reads absolute levels sees a GRU far outside everything it trained on.
Version 3 keeps only quantities that do not depend on those scales:

* **against the other stages** (``*_vs_stages``): the stage's log-indicator minus the mean over the
  curriculum's stages at this step (indicators bounded in [0, 1], such as accuracy and entropy, enter
  as the difference itself). Centred, not divided by the spread across stages: a clean curriculum
  whose stages differ by noise keeps small values instead of being blown up to unit spread.
* **against the start of the run** (``*_vs_start``): log ratio to the stage's value at control step 0.
* **short trends** (``*_trend``): change over the last ``window`` control steps (since the start while
  fewer have passed).

The per-stage weight enters as ``log(S w)`` (0 = the uniform share), so stage counts look alike too.
Building a row needs the run's history, so observations come from a `RelativeTracker` (one per run).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from metacurr.monitors.state import LearningState

#: Per-stage features of layout v3, in vector order.
STAGE_FEATURES_V3: tuple[str, ...] = (
    "log_weight",  # log(S * w): the stage's weight against the uniform share
    "loss_vs_stages",  # log probe loss minus its mean over the stages
    "loss_vs_start",  # log(probe loss / probe loss at step 0)
    "loss_trend",  # log(probe loss / probe loss `window` steps ago)
    "train_loss_vs_stages",  # log train loss minus its mean over the stages
    "train_vs_probe",  # log(train loss / probe loss)
    "acc_vs_stages",  # probe accuracy minus its mean over the stages
    "acc_vs_start",  # probe accuracy minus its value at step 0
    "entropy_vs_stages",  # normalised prediction entropy minus its mean over the stages
    "entropy_trend",  # entropy change over the last `window` steps
    "confidence_vs_stages",  # mean max-probability minus its mean over the stages
    "grad_norm_vs_stages",  # log head-gradient norm minus its mean over the stages
    "grad_norm_vs_start",  # log(head-gradient norm / its value at step 0)
    "grad_var_vs_stages",  # log micro-batch gradient variance minus its mean over the stages
    "drift_vs_stages",  # log(drift + 1e-3) minus its mean over the stages
    "ece_vs_stages",  # calibration error minus its mean over the stages
    "grad_align",  # cosine of the stage's head gradient with the val gradient (already scale-free)
)

#: Global features of layout v3, in vector order.
GLOBAL_FEATURES_V3: tuple[str, ...] = (
    "progress",  # fraction of the control budget used
    "val_loss_vs_start",  # log(val loss / val loss at step 0)
    "val_loss_trend",  # log(val loss / val loss `window` steps ago)
    "val_acc_vs_start",  # val accuracy minus its value at step 0
    "total_grad_norm_vs_start",  # log(full-model gradient norm / its value at step 0)
)

_TINY = 1e-8


def _log(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(np.asarray(x, dtype=np.float64), _TINY))


def _centre(x: np.ndarray) -> np.ndarray:
    return x - x.mean()


class RelativeTracker:
    """Builds v3 rows for one run: remembers the first state and the last ``window`` states.

    Args:
        window: control steps the trends look back over.
    """

    def __init__(self, window: int = 3):
        self.window = int(window)
        self.reset()

    def reset(self) -> None:
        """Forget the run (call at the start of every run)."""
        self.first: LearningState | None = None
        self.history: deque[LearningState] = deque(maxlen=self.window + 1)

    def features(self, state: LearningState) -> tuple[np.ndarray, np.ndarray]:
        """(per-stage array (n_stages, len(STAGE_FEATURES_V3)), globals (len(GLOBAL_FEATURES_V3),)).

        The first state a tracker sees after `reset` is the run's start.
        """
        if self.first is None or self.first.n_stages != state.n_stages:
            self.first = state
            self.history.clear()
        self.history.append(state)
        first, back = self.first, self.history[0]
        s, n = state.stage, state.n_stages

        def vs_stages(key: str, log: bool = True) -> np.ndarray:
            v = np.asarray(s[key], dtype=np.float64)
            return _centre(_log(v) if log else v)

        loss = _log(s["loss"])
        per = {
            "log_weight": np.log(np.maximum(n * np.asarray(s["weight"], dtype=np.float64), _TINY)),
            "loss_vs_stages": _centre(loss),
            "loss_vs_start": loss - _log(first.stage["loss"]),
            "loss_trend": loss - _log(back.stage["loss"]),
            "train_loss_vs_stages": vs_stages("train_loss"),
            "train_vs_probe": _log(s["train_loss"]) - loss,
            "acc_vs_stages": vs_stages("acc", log=False),
            "acc_vs_start": np.asarray(s["acc"], dtype=np.float64) - np.asarray(first.stage["acc"], dtype=np.float64),
            "entropy_vs_stages": vs_stages("entropy", log=False),
            "entropy_trend": np.asarray(s["entropy"], dtype=np.float64) - np.asarray(back.stage["entropy"], dtype=np.float64),
            "confidence_vs_stages": vs_stages("confidence", log=False),
            "grad_norm_vs_stages": vs_stages("grad_norm"),
            "grad_norm_vs_start": _log(s["grad_norm"]) - _log(first.stage["grad_norm"]),
            "grad_var_vs_stages": vs_stages("grad_var"),
            "drift_vs_stages": _centre(np.log(np.maximum(np.asarray(s["drift"], dtype=np.float64), 0.0) + 1e-3)),
            "ece_vs_stages": vs_stages("ece", log=False),
            "grad_align": np.asarray(s["grad_align"], dtype=np.float64),
        }
        g, g0, gb = state.glob, first.glob, back.glob
        glob = {
            "progress": float(g["progress"]),
            "val_loss_vs_start": float(_log(g["val_loss"]) - _log(g0["val_loss"])),
            "val_loss_trend": float(_log(g["val_loss"]) - _log(gb["val_loss"])),
            "val_acc_vs_start": float(g["val_acc"] - g0["val_acc"]),
            "total_grad_norm_vs_start": float(_log(g["total_grad_norm"]) - _log(g0["total_grad_norm"])),
        }
        stage = np.stack([per[k] for k in STAGE_FEATURES_V3], axis=1)
        return np.nan_to_num(stage, nan=0.0), np.nan_to_num(np.array([glob[k] for k in GLOBAL_FEATURES_V3]), nan=0.0)
