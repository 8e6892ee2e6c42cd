"""The statistics' intervals have the width a *stratified* bootstrap gives (not only lo <= point <= hi), and
`compute_statistics` reports the numbers a hand calculation gives on a small table.

Two tasks whose scores sit far apart (around 0 and around 1, spread +-0.05): resampling seeds within each
task keeps the task mix fixed, so the CI of the overall mean reflects only the within-task spread
(width ~0.03); a pooled (unstratified) bootstrap also resamples the task mix and is ~15x wider.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from metacurr.evaluation.stats import (
    CONFIDENCE,
    ci_verdict,
    compute_statistics,
    iqm,
    iqm_ci,
    mean_ci,
    normalize_scores,
    paired_difference,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap,
)

SPREAD = np.linspace(-0.05, 0.05, 10)
FAR_APART = [0.0 + SPREAD, 1.0 + SPREAD]


def _z(conf: float = CONFIDENCE) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + conf / 2))


def stratified_mean_sd(groups) -> float:
    """Standard deviation of the overall mean under resampling within each group (plug-in variances)."""
    n = sum(len(g) for g in groups)
    return float(np.sqrt(sum((len(g) / n) ** 2 * np.var(g) / len(g) for g in groups)))


def numpy_stratified_ci(groups, stat, n=4000, conf=CONFIDENCE, seed=1):
    """An independent stratified percentile bootstrap in plain numpy (for comparison only)."""
    rng = np.random.default_rng(seed)
    draws = [np.asarray(g)[rng.integers(0, len(g), (n, len(g)))] for g in groups]
    vals = stat(np.concatenate(draws, axis=1))
    return tuple(np.quantile(vals, [(1 - conf) / 2, (1 + conf) / 2]))


def test_mean_ci_width_is_the_stratified_one():
    point, lo, hi = mean_ci(FAR_APART)
    sd = stratified_mean_sd(FAR_APART)  # 0.0071; a pooled bootstrap would give 0.112
    assert point == pytest.approx(0.5, abs=1e-12)
    assert (hi - lo) == pytest.approx(2 * _z() * sd, rel=0.2)
    assert lo < point < hi


def test_iqm_ci_matches_an_independent_stratified_bootstrap():
    point, lo, hi = iqm_ci(FAR_APART)
    ref_lo, ref_hi = numpy_stratified_ci(FAR_APART, lambda x: iqm(x, axis=1))
    assert point == pytest.approx(iqm(np.concatenate(FAR_APART)), abs=1e-12)
    assert lo == pytest.approx(ref_lo, abs=0.006) and hi == pytest.approx(ref_hi, abs=0.006)
    assert hi - lo < 0.05  # pooled resampling of the task mix gives > 0.3


def test_paired_difference_ci_width_is_the_stratified_one():
    d = paired_difference([-0.2 + SPREAD, 0.4 + SPREAD])
    assert d["mean"] == pytest.approx(0.1, abs=1e-12) and d["n_pairs"] == 20
    assert d["frac_improved"] == 0.5 and d["frac_worse"] == 0.5
    assert (d["high"] - d["low"]) == pytest.approx(2 * _z() * stratified_mean_sd([SPREAD, SPREAD]), rel=0.2)


def test_probability_of_improvement_ci_matches_an_independent_stratified_bootstrap():
    x = [np.array([0.1, 0.4, 0.5, 0.9]), np.array([2.0, 2.5, 3.0])]
    y = [np.array([0.2, 0.3, 0.6, 0.7]), np.array([1.0, 2.2, 2.8])]
    p, lo, hi = probability_of_improvement(x, y)
    # task 1: 8 of 16 pairs greater; task 2: 1 + 2 + 3 of 9 -> (0.5 + 6 / 9) / 2
    assert p == pytest.approx((0.5 + 6 / 9) / 2)
    rng = np.random.default_rng(3)
    vals = []
    for _ in range(4000):
        per_task = []
        for a, b in zip(x, y):
            ra, rb = a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))]
            per_task.append((ra[:, None] > rb[None, :]).mean() + 0.5 * (ra[:, None] == rb[None, :]).mean())
        vals.append(np.mean(per_task))
    ref_lo, ref_hi = np.quantile(vals, [0.025, 0.975])
    assert lo == pytest.approx(ref_lo, abs=0.05) and hi == pytest.approx(ref_hi, abs=0.05)


def test_bootstrap_options_and_degenerate_inputs():
    g = [np.arange(8.0), np.arange(8.0) + 3]
    a = stratified_bootstrap(g, lambda *s, axis=-1: np.mean(np.concatenate(s, axis=axis), axis=axis), seed=4)
    b = stratified_bootstrap(g, lambda *s, axis=-1: np.mean(np.concatenate(s, axis=axis), axis=axis), seed=4)
    c = stratified_bootstrap(g, lambda *s, axis=-1: np.mean(np.concatenate(s, axis=axis), axis=axis), seed=5)
    assert a == b and a != c  # seeded
    narrow = mean_ci(g, confidence=0.5)
    assert a[2] - a[1] > narrow[2] - narrow[1] > 0
    assert mean_ci(g, n_resamples=50) != mean_ci(g)
    assert mean_ci(g) == mean_ci(g, seed=0, n_resamples=2000, confidence=0.95)  # the documented defaults
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's degenerate-data warnings are expected and silenced
        assert mean_ci([[0.7, 0.7, 0.7], [0.2, 0.2]]) == pytest.approx((0.5, 0.5, 0.5))
    assert all(np.isnan(v) for v in mean_ci([]))
    assert all(np.isnan(v) for v in mean_ci([[1.0, 2.0], []]))
    p, lo, hi = mean_ci([[1.0, 3.0], [5.0]])
    assert p == 3.0 and np.isnan(lo) and np.isnan(hi)
    with pytest.raises(ValueError, match="same tasks"):
        probability_of_improvement([[1.0]], [[1.0], [2.0]])


def test_small_helpers_at_their_boundaries():
    assert iqm(np.array([[1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 8, 8, 8, 8]])) == pytest.approx([4.5, 4.0])
    assert ci_verdict(0.0, 0.1) == "includes" and ci_verdict(-0.1, 0.0) == "includes"  # the null on the edge
    assert ci_verdict(0.6, 0.8, null=0.5) == "above" and ci_verdict(0.2, 0.4, null=0.5) == "below"
    assert ci_verdict(0.1, np.inf) == "undefined"
    assert performance_profile([[0.5]], [0.5, 0.49]).tolist() == [0.0, 1.0]  # strictly above tau
    assert np.isnan(performance_profile([[]], [0.5])).all()
    ties = paired_difference([[0.0, 0.1, -0.1, 0.0]])  # a tie is neither an improvement nor worse
    assert ties["frac_improved"] == 0.25 and ties["frac_worse"] == 0.25
    assert paired_difference([])["n_pairs"] == 0 and np.isnan(paired_difference([])["frac_improved"])


def _table() -> pd.DataFrame:
    acc = {("a", "uniform"): [0.2, 0.4, 0.6], ("a", "x"): [0.5, 0.7, np.nan],
           ("b", "uniform"): [0.5, 0.5, 0.5], ("b", "x"): [0.9, 0.8, 0.7]}
    return pd.DataFrame([{"task": t, "controller": c, "seed": 10_000 + s, "final_val_acc": v}
                         for (t, c), vals in acc.items() for s, v in enumerate(vals)])


def test_compute_statistics_by_hand():
    df = _table()
    s = compute_statistics(df)
    assert np.isnan(df["final_val_acc"]).sum() == 1 and "score" not in df  # the input is not modified
    assert s["controllers"] == ["uniform", "x"] and s["tasks"] == ["a", "b"]
    assert s["metric"] == "final_val_acc" and s["normalization"] == "minmax" and s["confidence"] == CONFIDENCE
    x = s["aggregate"]["x"]
    # the diverged run counts as 0; min-max per task: a over [0, 0.7], b over [0.5, 0.9]
    scores = [0.5 / 0.7, 1.0, 0.0, 1.0, 0.75, 0.5]
    assert x["n_runs"] == 6 and x["raw_mean"] == pytest.approx(3.6 / 6)
    assert x["mean"] == pytest.approx(np.mean(scores)) and x["iqm"] == pytest.approx(iqm(np.array(scores)))
    for k in ("iqm", "mean", "raw"):
        lo, hi = x[f"{k}_low"], x[f"{k}_high"]
        assert lo <= x[k if k != "raw" else "raw_mean"] <= hi and hi - lo > 0
    assert s["aggregate"]["uniform"]["mean"] == pytest.approx(np.mean([2 / 7, 4 / 7, 6 / 7, 0, 0, 0]))
    assert s["per_task"] == {"a": pytest.approx({"uniform": 0.4, "x": 0.4}), "b": pytest.approx({"uniform": 0.5, "x": 0.8})}
    assert set(s["poi"]) == {"uniform"} and set(s["poi"]["uniform"]) == {"x"}  # references present only
    assert s["poi"]["uniform"]["x"]["p"] == pytest.approx((5 / 9 + 1) / 2)
    d = s["paired"]["uniform"]["x"]
    assert d["mean"] == pytest.approx(0.15) and d["n_pairs"] == 6
    assert d["frac_improved"] == pytest.approx(5 / 6) and d["frac_worse"] == pytest.approx(1 / 6)
    taus = s["profile"]["taus"]
    assert len(taus) == 51 and taus[0] == 0 and taus[-1] == 1
    assert s["profile"]["fractions"]["x"][taus.index(0.5)] == pytest.approx(2 / 3)


def test_compute_statistics_options():
    s = compute_statistics(_table(), normalization="uniform", references=("x",), taus=[0.25, 1.5])
    assert s["aggregate"]["x"]["mean"] == pytest.approx((1.25 + 1.75 + 0 + 1.8 + 1.6 + 1.4) / 6)
    assert set(s["poi"]) == {"x"} and s["poi"]["x"]["uniform"]["p"] == pytest.approx(1 - (5 / 9 + 1) / 2)
    assert s["paired"]["x"]["uniform"]["mean"] == pytest.approx(-0.15)
    assert s["profile"]["taus"] == [0.25, 1.5] and s["profile"]["fractions"]["x"] == pytest.approx([5 / 6, (1 / 3 + 2 / 3) / 2])
    other = compute_statistics(_table(), seed=1)
    assert other["aggregate"]["x"]["mean_low"] != compute_statistics(_table())["aggregate"]["x"]["mean_low"]
    for ref in ("uniform", "heuristic", "best-static"):  # each default reference is compared against
        renamed = compute_statistics(_table().replace({"controller": {"uniform": ref}}))
        assert set(renamed["poi"]) == {ref} and set(renamed["paired"][ref]) == {"x"}
    only_a = _table()
    only_a = only_a[~((only_a.controller == "x") & (only_a.task == "b"))]
    t = compute_statistics(only_a)
    assert t["paired"]["uniform"]["x"]["n_pairs"] == 3 and t["aggregate"]["x"]["n_runs"] == 3
    assert t["poi"]["uniform"]["x"]["p"] == pytest.approx(5 / 9)  # compared on the task both ran only
    assert t["per_task"]["b"] == {"uniform": 0.5}  # a controller without runs on a task has no entry
    ref_a = _table()
    ref_a = ref_a[~((ref_a.controller == "uniform") & (ref_a.task == "b"))]
    assert compute_statistics(ref_a)["poi"]["uniform"]["x"]["p"] == pytest.approx(5 / 9)  # nor without the reference


def test_normalize_scores_missing_values_and_methods():
    df = pd.DataFrame({"task": ["a", "a", "a"], "controller": ["uniform", "x", "x"], "final_val_acc": [0.4, 0.8, np.nan]})
    mm = normalize_scores(df)
    assert mm.iloc[0] == 0.0 and mm.iloc[1] == 1.0 and np.isnan(mm.iloc[2])
    assert normalize_scores(df, method="uniform").iloc[:2].tolist() == pytest.approx([1.0, 2.0])
    zero = df.assign(final_val_acc=[0.0, 0.5, 0.5])
    assert np.isnan(normalize_scores(zero, method="uniform")).all()  # no positive uniform mean: undefined
    with pytest.raises(ValueError, match="valid choices: minmax, uniform"):
        normalize_scores(df, method="rank")
