"""Statistics for comparing controllers across tasks and seeds (Agarwal et al., "Deep Reinforcement
Learning at the Edge of the Statistical Precipice", NeurIPS 2021: IQM, stratified bootstrap CIs,
probability of improvement, performance profiles), computed with `scipy.stats` (no hand-rolled
bootstrap; rliable itself does not import with pandas 3).

Conventions:

* Scores are grouped per task; a *stratified* bootstrap resamples seeds within each task, which is
  `scipy.stats.bootstrap` with one sample per task (``paired=False`` resamples every sample on its own).
  Percentile intervals, as in rliable. A stratum with fewer than 2 runs makes the CI NaN (undefined).
* Normalised score (``normalize_scores``): per task, min-max over *all* runs of all evaluated controllers
  on that task, ``(x - min) / (max - min)`` (0.5 when every run ties); or, with ``method="uniform"``,
  ``x / mean_uniform(task)``. Min-max depends on which controllers are compared; it is only used to put
  tasks on one scale for IQM, means and profiles. Probability of improvement and paired differences
  use the raw metric within each task, so they do not depend on the normalisation.
* Diverged runs (metric missing) count as accuracy 0 (`fill_diverged`), the worst possible score.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.stats

CONFIDENCE = 0.95
N_RESAMPLES = 2000


def iqm(x: np.ndarray, axis: int | None = -1) -> np.ndarray | float:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end, `scipy.stats.trim_mean`)."""
    return scipy.stats.trim_mean(np.asarray(x, dtype=np.float64), 0.25, axis=axis)


def _concat_stat(fn: Callable) -> Callable:
    def stat(*samples, axis=-1):
        return fn(np.concatenate(samples, axis=axis), axis=axis)

    return stat


def stratified_bootstrap(
    groups: Sequence[Sequence[float]],
    statistic: Callable,
    *,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Point estimate and percentile CI of ``statistic(*groups, axis=-1)``, resampling within each group.

    Args:
        groups: one array per stratum (task), e.g. the seeds' scores.
        statistic: vectorised ``f(*samples, axis) -> value``.
        confidence: confidence level of the interval.
        n_resamples: bootstrap resamples.
        seed: seed of the resampling (CIs are reproducible).

    Returns:
        (point, low, high); low / high are NaN when a stratum has fewer than 2 values.
    """
    gs = [np.asarray(g, dtype=np.float64) for g in groups]
    if not gs or any(len(g) == 0 for g in gs):
        return float("nan"), float("nan"), float("nan")
    point = float(statistic(*gs, axis=-1))
    if any(len(g) < 2 for g in gs):
        return point, float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = scipy.stats.bootstrap(
            tuple(gs), statistic, n_resamples=n_resamples, vectorized=True, paired=False, axis=-1,
            confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed),
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return point, lo, hi


def iqm_ci(groups: Sequence[Sequence[float]], **kw) -> tuple[float, float, float]:
    """IQM over all runs (pooled across tasks) with a stratified bootstrap CI."""
    return stratified_bootstrap(groups, _concat_stat(iqm), **kw)


def mean_ci(groups: Sequence[Sequence[float]], **kw) -> tuple[float, float, float]:
    """Mean over all runs with a stratified bootstrap CI."""
    return stratified_bootstrap(groups, _concat_stat(np.mean), **kw)


def _prob_greater(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + 0.5 P(X = Y) over all pairs (the Mann-Whitney U statistic / (n m)), on the last axis."""
    gt = (x[..., :, None] > y[..., None, :]).mean(axis=(-2, -1))
    eq = (x[..., :, None] == y[..., None, :]).mean(axis=(-2, -1))
    return gt + 0.5 * eq


def probability_of_improvement(
    x_groups: Sequence[Sequence[float]], y_groups: Sequence[Sequence[float]], **kw
) -> tuple[float, float, float]:
    """P(X > Y): per task the probability that a random run of X scores above one of Y (ties count half),
    averaged over tasks; stratified bootstrap CI (X's and Y's runs resampled within each task).

    Args:
        x_groups, y_groups: per-task score arrays of X and of Y, tasks in the same order.
    """
    if len(x_groups) != len(y_groups):
        raise ValueError("x_groups and y_groups need the same tasks")
    m = len(x_groups)

    def stat(*samples, axis=-1):
        vals = [_prob_greater(np.moveaxis(samples[i], axis, -1), np.moveaxis(samples[m + i], axis, -1)) for i in range(m)]
        return np.mean(vals, axis=0)

    return stratified_bootstrap(list(x_groups) + list(y_groups), stat, **kw)


def paired_difference(diff_groups: Sequence[Sequence[float]], **kw) -> dict:
    """Mean of paired differences X - Y (same task and seed) with a stratified bootstrap CI.

    Returns:
        ``{"mean", "low", "high", "frac_improved", "frac_worse", "n_pairs"}``; ``frac_improved`` is the
        fraction of (task, seed) pairs where X > Y.
    """
    flat = np.concatenate([np.asarray(g, dtype=np.float64) for g in diff_groups]) if diff_groups else np.zeros(0)
    point, lo, hi = mean_ci(diff_groups, **kw) if len(flat) else (float("nan"),) * 3
    return {
        "mean": point, "low": lo, "high": hi,
        "frac_improved": float((flat > 0).mean()) if len(flat) else float("nan"),
        "frac_worse": float((flat < 0).mean()) if len(flat) else float("nan"),
        "n_pairs": int(len(flat)),
    }


def performance_profile(groups: Sequence[Sequence[float]], taus: Sequence[float]) -> np.ndarray:
    """Fraction of runs with score > tau for each tau (per task, then averaged over tasks)."""
    taus = np.asarray(taus, dtype=np.float64)
    per_task = [(np.asarray(g, dtype=np.float64)[None, :] > taus[:, None]).mean(1) for g in groups if len(g)]
    return np.mean(per_task, axis=0) if per_task else np.full(len(taus), np.nan)


def fill_diverged(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """A copy where a missing metric (diverged / failed run) counts as 0."""
    out = df.copy()
    out[metric] = pd.to_numeric(out[metric], errors="coerce").fillna(0.0)
    return out


def normalize_scores(df: pd.DataFrame, metric: str = "final_val_acc", method: str = "minmax") -> pd.Series:
    """Per-task normalised scores of ``metric`` (see the module docstring)."""
    x = pd.to_numeric(df[metric], errors="coerce").astype(float)
    if method == "minmax":
        lo = x.groupby(df["task"]).transform("min")
        hi = x.groupby(df["task"]).transform("max")
        span = hi - lo
        return ((x - lo) / span.where(span > 0)).fillna(0.5).where(x.notna())
    if method == "uniform":
        ref = x.where(df["controller"] == "uniform").groupby(df["task"]).transform("mean")
        return x / ref.where(ref > 0)
    raise ValueError(f"unknown normalisation {method!r}; valid choices: minmax, uniform")


def _groups(df: pd.DataFrame, ctrl: str, col: str, tasks: list[str]) -> list[np.ndarray]:
    sub = df[df["controller"] == ctrl]
    return [sub.loc[sub["task"] == t, col].to_numpy(dtype=np.float64) for t in tasks]


def compute_statistics(
    df: pd.DataFrame,
    metric: str = "final_val_acc",
    references: Sequence[str] = ("uniform", "heuristic", "best-static"),
    normalization: str = "minmax",
    taus: Sequence[float] | None = None,
    seed: int = 0,
) -> dict:
    """Every aggregate the report needs, as a JSON-serialisable dict.

    Args:
        df: one row per run with columns controller, task, seed and ``metric``.
        metric: the score (higher is better).
        references: controllers to compare every other one against (those present are used).
        normalization: ``"minmax"`` or ``"uniform"`` (see `normalize_scores`).
        taus: thresholds of the performance profile (default 0..1 in 51 steps).
        seed: bootstrap seed.

    Returns:
        ``aggregate`` (IQM / mean of normalised scores with CIs, mean raw metric, per controller),
        ``poi`` (P(X > ref) with CIs), ``paired`` (paired differences vs each reference), ``profile``,
        ``per_task`` (mean raw metric per task and controller).
    """
    df = fill_diverged(df, metric)
    df["score"] = normalize_scores(df, metric, normalization)
    ctrls = list(dict.fromkeys(df["controller"]))
    tasks = list(dict.fromkeys(df["task"]))
    taus = np.linspace(0.0, 1.0, 51) if taus is None else np.asarray(taus, dtype=np.float64)
    kw = {"seed": seed}
    agg = {}
    for c in ctrls:
        g = [a for a in _groups(df, c, "score", tasks) if len(a)]
        raw = [a for a in _groups(df, c, metric, tasks) if len(a)]
        i, ilo, ihi = iqm_ci(g, **kw)
        m, mlo, mhi = mean_ci(g, **kw)
        r, rlo, rhi = mean_ci(raw, **kw)
        agg[c] = {"iqm": i, "iqm_low": ilo, "iqm_high": ihi, "mean": m, "mean_low": mlo, "mean_high": mhi,
                  "raw_mean": r, "raw_low": rlo, "raw_high": rhi, "n_runs": int(sum(len(a) for a in g))}
    poi: dict = {}
    paired: dict = {}
    for ref in [r for r in references if r in ctrls]:
        poi[ref], paired[ref] = {}, {}
        for c in ctrls:
            if c == ref:
                continue
            both = [t for t in tasks if ((df["controller"] == c) & (df["task"] == t)).any()
                    and ((df["controller"] == ref) & (df["task"] == t)).any()]
            if not both:
                continue
            p, lo, hi = probability_of_improvement(_groups(df, c, metric, both), _groups(df, ref, metric, both), **kw)
            poi[ref][c] = {"p": p, "low": lo, "high": hi}
            a = df[df["controller"] == c].set_index(["task", "seed"])[metric]
            b = df[df["controller"] == ref].set_index(["task", "seed"])[metric]
            d = (a - b).dropna()
            groups = [d.xs(t, level="task").to_numpy() for t in both if t in d.index.get_level_values("task")]
            paired[ref][c] = paired_difference(groups, **kw)
    profile = {c: performance_profile([a for a in _groups(df, c, "score", tasks) if len(a)], taus).tolist() for c in ctrls}
    per_task = {t: {c: float(df.loc[(df["task"] == t) & (df["controller"] == c), metric].mean())
                    for c in ctrls if ((df["task"] == t) & (df["controller"] == c)).any()} for t in tasks}
    return {
        "metric": metric, "normalization": normalization, "confidence": CONFIDENCE,
        "controllers": ctrls, "tasks": tasks, "aggregate": agg, "poi": poi, "paired": paired,
        "profile": {"taus": taus.tolist(), "fractions": profile}, "per_task": per_task,
    }


def ci_verdict(low: float, high: float, null: float = 0.0) -> str:
    """'above' / 'below' when the CI excludes ``null``, 'includes' when it does not, 'undefined' for NaN."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return "undefined"
    if low > null:
        return "above"
    if high < null:
        return "below"
    return "includes"
