"""Per-run metrics computed from a run's control-step rows (shared by `train` summaries and `evaluate`).

Pure numpy over the metrics rows, so the run loop and the evaluation both import it from below.
"""

from __future__ import annotations

import numpy as np


def _col(rows: list[dict], key: str) -> np.ndarray:
    return np.array([np.nan if r.get(key) is None else r[key] for r in rows], dtype=float)


def trajectory_metrics(rows: list[dict], n_stages: int) -> dict:
    """Metrics of the whole trajectory.

    - ``early_stage_dominance``: share of the weighted head-gradient norm coming from the first stage,
      averaged over the last third of training (``w_0 |g_0| / sum_s w_s |g_s|``).
    - ``val_acc_volatility`` / ``confidence_volatility``: std of step-to-step changes of val accuracy and
      of mean probe confidence over steps where the weights moved (transition stability).
    - ``weight_change``: mean L1 change of the weights per control step.
    - ``time_to_target``: first control step reaching 95% of this run's best val accuracy.
    - ``best_val_acc``: best val accuracy seen at a control step.
    """
    body = rows[1:] if len(rows) > 1 else rows
    w = np.stack([_col(body, f"curriculum/w_stage{s}") for s in range(n_stages)], 1)
    g = np.stack([_col(body, f"monitor/stage{s}/grad_norm") for s in range(n_stages)], 1)
    conf = np.stack([_col(body, f"monitor/stage{s}/confidence") for s in range(n_stages)], 1).mean(1)
    val_acc = _col(body, "inner/val_acc")
    tail = slice(len(body) - max(1, len(body) // 3), len(body))
    contrib = w[tail] * g[tail]
    denom = contrib.sum(1)
    dom = np.where(denom > 0, contrib[:, 0] / np.where(denom > 0, denom, 1), np.nan)
    dw = np.abs(np.diff(w, axis=0)).sum(1) if len(w) > 1 else np.zeros(0)
    moving = dw > 1e-6
    dacc = np.diff(val_acc)
    dconf = np.diff(conf)
    best = np.nanmax(val_acc) if np.isfinite(val_acc).any() else np.nan
    hit = np.flatnonzero(val_acc >= 0.95 * best) if np.isfinite(best) else np.array([])
    return {
        "early_stage_dominance": float(np.nanmean(dom)) if np.isfinite(dom).any() else None,
        "val_acc_volatility": float(np.std(dacc[moving])) if moving.any() else 0.0,
        "confidence_volatility": float(np.std(dconf[moving])) if moving.any() else 0.0,
        "weight_change": float(dw.mean()) if len(dw) else 0.0,
        "time_to_target": int(hit[0]) + 1 if len(hit) else None,
        "best_val_acc": float(best) if np.isfinite(best) else None,
    }
