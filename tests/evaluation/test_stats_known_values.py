"""Statistics against hand-computed values."""

import numpy as np
import pandas as pd
import pytest

from metacurr.evaluation.report import compare_sentence, verdict
from metacurr.evaluation.stats import (
    ci_verdict,
    compute_statistics,
    iqm,
    iqm_ci,
    mean_ci,
    normalize_scores,
    paired_difference,
    performance_profile,
    probability_of_improvement,
)


def test_iqm_of_one_to_eight():
    # 25% trimmed from each end: mean(3, 4, 5, 6) = 4.5
    assert iqm(np.arange(1, 9)) == pytest.approx(4.5)
    assert iqm(np.array([1.0, 1.0, 1.0, 100.0])) == pytest.approx(1.0)  # robust to an outlier run


def test_stratified_ci_contains_point_and_is_nan_for_singletons():
    p, lo, hi = iqm_ci([np.arange(1, 9), np.arange(11, 19)])
    assert p == pytest.approx(iqm(np.r_[np.arange(1, 9), np.arange(11, 19)]))
    assert lo <= p <= hi
    assert np.isnan(mean_ci([[1.0], [2.0, 3.0]])[1])
    # constant data -> degenerate CI at the value
    assert mean_ci([[0.7, 0.7, 0.7]]) == pytest.approx((0.7, 0.7, 0.7))


def test_probability_of_improvement_known_values():
    sep = probability_of_improvement([[5, 6, 7], [9, 9.5]], [[1, 2, 3], [1, 2]])
    assert sep == pytest.approx((1.0, 1.0, 1.0))
    same = probability_of_improvement([[1, 2, 3, 4]], [[1, 2, 3, 4]])
    assert same[0] == pytest.approx(0.5) and same[1] < 0.5 < same[2]
    assert probability_of_improvement([[1, 2]], [[5, 6]])[0] == 0.0
    # 2 of 4 pairs greater, 1 tie -> 0.5 + 0.5 * 0.25
    assert probability_of_improvement([[1, 3]], [[1, 2]])[0] == pytest.approx(0.625)


def test_paired_difference_and_profile():
    d = paired_difference([[0.1, 0.2, -0.05], [0.3, 0.1]])
    assert d["mean"] == pytest.approx(0.13) and d["frac_improved"] == pytest.approx(0.8) and d["n_pairs"] == 5
    assert d["low"] <= d["mean"] <= d["high"]
    assert np.allclose(performance_profile([[0.1, 0.5, 0.9], [1.0]], [0.0, 0.5]), [1.0, (1 / 3 + 1) / 2])


def test_ci_verdict():
    assert ci_verdict(0.1, 0.2) == "above" and ci_verdict(-0.2, -0.1) == "below"
    assert ci_verdict(-0.1, 0.1) == "includes" and ci_verdict(np.nan, 0.1) == "undefined"


def _frame(shift_b=0.0, n_seeds=6, noise=0.02):
    rng = np.random.default_rng(0)
    rows = []
    for t, base in (("t1", 0.5), ("t2", 0.8)):
        for s in range(n_seeds):
            common = rng.normal(0, 0.05)  # seed effect shared by all controllers (paired design)
            for c, delta in (("uniform", 0.0), ("heuristic", 0.0), ("policy:x", shift_b)):
                rows.append({"controller": c, "task": t, "seed": 10_000 + s,
                             "final_val_acc": base + common + delta + rng.normal(0, noise)})
    return pd.DataFrame(rows)


def test_minmax_normalisation_per_task():
    df = pd.DataFrame({"task": ["a", "a", "b", "b"], "controller": ["u", "v", "u", "v"], "final_val_acc": [0.2, 0.4, 0.9, 0.9]})
    assert normalize_scores(df).tolist() == [0.0, 1.0, 0.5, 0.5]


def test_compute_statistics_and_verdict_words():
    better = compute_statistics(_frame(shift_b=0.1))
    assert better["paired"]["uniform"]["policy:x"]["low"] > 0
    assert better["poi"]["uniform"]["policy:x"]["p"] > 0.9
    lines = "\n".join(verdict(better, ["policy:x"]))
    assert "beats `uniform`" in lines and "Best controller: `policy:x`" in lines
    same = compute_statistics(_frame(shift_b=0.0))
    d = same["paired"]["heuristic"]["policy:x"]
    assert d["low"] < 0 < d["high"]
    assert "does not beat `heuristic` (CI includes 0)" in compare_sentence("policy:x", "heuristic", d, None)
    assert "Caution" in "\n".join(verdict(same, [], min_seeds=2))


def test_best_literature_baseline_becomes_a_reference():
    from metacurr.evaluation.report import statistics

    df = _frame(shift_b=0.1)
    lit = []
    for c, delta in (("dwa", -0.05), ("bandit", 0.05)):  # bandit is the better literature baseline
        d = df[df.controller == "uniform"].copy()
        d["controller"], d["final_val_acc"] = c, d["final_val_acc"] + delta
        lit.append(d)
    stats = statistics(pd.concat([df, *lit], ignore_index=True))
    assert stats["best_literature"] == "bandit" and stats["references"][-1] == "bandit"
    d = stats["paired"]["bandit"]["policy:x"]
    assert d["mean"] == pytest.approx(0.05, abs=0.02) and d["low"] > 0  # paired: the seed effects cancel
    assert "`policy:x` beats `bandit`" in "\n".join(verdict(stats, ["policy:x"]))
    none = statistics(df)
    assert none["best_literature"] is None
    assert "a literature baseline: not evaluated" in "\n".join(verdict(none, ["policy:x"]))
