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

A v3 row is a function of the run's layout-2 rows (which hold every indicator; ``log1p`` entries are
inverted), so the same arithmetic serves a single env, a `PolicyController` and
`metacurr.envs.vec.RelativeObservationVecEnv`, which turns any layout-2 vector env (the batched one included) into a
layout-3 one.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from metacurr.monitors.state import GLOBAL_FEATURES, STAGE_FEATURES

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


#: Layout-2 entries stored as log1p(x).
_LOG1P = ("grad_norm", "grad_var", "total_grad_norm")


def decode_v2(stage: np.ndarray, glob: np.ndarray) -> tuple[dict, dict]:
    """Layout-2 feature rows ((n, len(STAGE_FEATURES)), (len(GLOBAL_FEATURES),)) -> raw indicator dicts."""
    st = {k: (np.expm1(stage[:, i].astype(np.float64)) if k in _LOG1P else stage[:, i].astype(np.float64))
          for i, k in enumerate(STAGE_FEATURES)}
    gl = {k: (float(np.expm1(glob[i])) if k in _LOG1P else float(glob[i])) for i, k in enumerate(GLOBAL_FEATURES)}
    return st, gl


class RelativeTracker:
    """Builds v3 rows for one run from its layout-2 rows: remembers the first and the last ``window``.

    Args:
        window: control steps the trends look back over.
    """

    def __init__(self, window: int = 3):
        self.window = int(window)
        self.reset()

    def reset(self) -> None:
        """Forget the run (call at the start of every run)."""
        self.first: tuple[dict, dict] | None = None
        self.history: deque[tuple[dict, dict]] = deque(maxlen=self.window + 1)

    def features(self, stage_v2: np.ndarray, glob_v2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One control step's layout-2 rows -> (per-stage (n, len(STAGE_FEATURES_V3)), globals (len(GLOBAL_FEATURES_V3),)).

        The first rows a tracker sees after `reset` are the run's start.
        """
        cur = decode_v2(np.asarray(stage_v2), np.asarray(glob_v2))
        n = len(cur[0]["weight"])
        if self.first is None or len(self.first[0]["weight"]) != n:
            self.first = cur
            self.history.clear()
        self.history.append(cur)
        (s, g), (s0, g0), (sb, gb) = cur, self.first, self.history[0]

        def vs_stages(key: str, log: bool = True) -> np.ndarray:
            return _centre(_log(s[key]) if log else s[key])

        loss = _log(s["loss"])
        per = {
            "log_weight": np.log(np.maximum(n * s["weight"], _TINY)),
            "loss_vs_stages": _centre(loss),
            "loss_vs_start": loss - _log(s0["loss"]),
            "loss_trend": loss - _log(sb["loss"]),
            "train_loss_vs_stages": vs_stages("train_loss"),
            "train_vs_probe": _log(s["train_loss"]) - loss,
            "acc_vs_stages": vs_stages("acc", log=False),
            "acc_vs_start": s["acc"] - s0["acc"],
            "entropy_vs_stages": vs_stages("entropy", log=False),
            "entropy_trend": s["entropy"] - sb["entropy"],
            "confidence_vs_stages": vs_stages("confidence", log=False),
            "grad_norm_vs_stages": vs_stages("grad_norm"),
            "grad_norm_vs_start": _log(s["grad_norm"]) - _log(s0["grad_norm"]),
            "grad_var_vs_stages": vs_stages("grad_var"),
            "drift_vs_stages": _centre(np.log(np.maximum(s["drift"], 0.0) + 1e-3)),
            "ece_vs_stages": vs_stages("ece", log=False),
            "grad_align": s["grad_align"],
        }
        glob = {
            "progress": g["progress"],
            "val_loss_vs_start": float(_log(g["val_loss"]) - _log(g0["val_loss"])),
            "val_loss_trend": float(_log(g["val_loss"]) - _log(gb["val_loss"])),
            "val_acc_vs_start": g["val_acc"] - g0["val_acc"],
            "total_grad_norm_vs_start": float(_log(g["total_grad_norm"]) - _log(g0["total_grad_norm"])),
        }
        stage = np.stack([per[k] for k in STAGE_FEATURES_V3], axis=1)
        return np.nan_to_num(stage, nan=0.0), np.nan_to_num(np.array([glob[k] for k in GLOBAL_FEATURES_V3]), nan=0.0)
