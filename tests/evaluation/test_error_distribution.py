"""Error distribution over classes: hand-computed values, run summaries, results columns, report, held-out set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score

from metacurr.error_distribution import (
    SUMMARY_KEYS,
    class_error_metrics,
    error_distribution,
    predict,
)
from metacurr.evaluation.collect import LEADING
from metacurr.evaluation.task_sets import HELDOUT_SETS, get_task_set
from metacurr.tasks import build_curriculum


def test_metrics_match_a_hand_computation():
    # class 0: 2 of 3 right, class 1: 1 of 2, class 2: 1 of 1, class 3: absent
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 0, 2])
    m = class_error_metrics(pred, y, n_classes=4)
    assert m["per_class_acc"] == [2 / 3, 1 / 2, 1.0, None]
    assert m["balanced_acc"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)  # 13/18
    assert m["balanced_acc"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["worst_class_acc"] == 0.5
    assert m["class_error_spread"] == 0.5  # errors 1/3, 1/2, 0: max - min
    # a majority-class predictor: plain accuracy 0.9, balanced 0.5, worst class 0
    y = np.array([0] * 9 + [1])
    m = class_error_metrics(np.zeros(10, dtype=int), y, 2)
    assert (m["balanced_acc"], m["worst_class_acc"], m["class_error_spread"]) == (0.5, 0.0, 1.0)
    empty = class_error_metrics(np.zeros(0, dtype=int), np.zeros(0, dtype=int), 3)
    assert empty["balanced_acc"] is None and empty["per_class_acc"] == [None, None, None]


class _Fixed(torch.nn.Module):
    """Predicts class x[:, 0] (as an int, clamped to [0, 2]); has a parameter so it looks like a model."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return torch.nn.functional.one_hot(x[:, 0].long().clamp(0, 2), 3).float() + self.w


def test_error_distribution_on_val_and_shift_and_model_mode_restored(tiny_curriculum):
    cur = tiny_curriculum
    model = _Fixed()
    model.train()
    val_x = torch.zeros(6, cur.input_shape[0])
    val_x[:, 0] = torch.tensor([0, 0, 1, 1, 0, 2])
    cur.val = (val_x, torch.tensor([0, 0, 0, 1, 1, 2]))
    out = error_distribution(model, cur)
    assert model.training
    assert out["val_per_class_acc"] == [2 / 3, 1 / 2, 1.0]
    assert out["val_worst_class_acc"] == 0.5 and out["val_class_error_spread"] == 0.5
    assert set(SUMMARY_KEYS) <= set(out) and out["shift_balanced_acc"] is not None
    cur.shift = None
    out = error_distribution(model, cur)
    assert out["shift_balanced_acc"] is None and out["shift_per_class_acc"] is None
    assert predict(model, val_x, chunk=4).tolist() == [0, 0, 1, 1, 0, 2]


def test_run_summary_has_the_metrics_and_they_agree_with_val_acc(tiny_curriculum, tiny_budget):
    from metacurr import train

    s = train(tiny_curriculum, arch="mlp", controller="uniform", seed=0, **tiny_budget)
    for k in SUMMARY_KEYS:
        assert k in s and s[k] is not None
    y = tiny_curriculum.val[1].numpy()
    counts = np.bincount(y, minlength=3)
    # plain accuracy = class-count-weighted mean of the per-class accuracies
    assert s["final_val_acc"] == pytest.approx(np.dot(s["val_per_class_acc"], counts) / counts.sum(), abs=1e-6)
    assert s["val_worst_class_acc"] <= s["val_balanced_acc"] <= max(s["val_per_class_acc"])


def test_results_columns_include_the_metrics():
    assert all(k in LEADING for k in SUMMARY_KEYS)


def test_report_section_tables_and_pairs():
    from metacurr.evaluation.report import _class_section

    rows = []
    for c, base in (("uniform", 0.5), ("heuristic", 0.6)):
        for t in ("a", "b"):
            for seed in (10_000, 10_001):
                rows.append({"controller": c, "task": t, "seed": seed, "val_balanced_acc": base + 0.1,
                             "val_worst_class_acc": base + (seed - 10_000) * 0.01, "val_class_error_spread": 0.2,
                             "shift_balanced_acc": None, "shift_worst_class_acc": None,
                             "shift_class_error_spread": None})
    md = "\n".join(_class_section(pd.DataFrame(rows), ["uniform", "heuristic"], ["uniform"]))
    assert "## Error distribution over classes" in md and "val worst-class acc" in md
    assert "shift balanced acc" not in md  # no shift values: no column
    assert "X minus `uniform`" in md and "+0.100" in md and "100%" in md


def test_heldout_imbalance_set_builds_and_is_imbalanced_only_in_training_stages():
    assert "heldout-imbalance" in HELDOUT_SETS  # excluded from every training distribution (tested there)
    for task in get_task_set("heldout-imbalance"):
        cur = build_curriculum(task["family"], task["n_stages"], 10_000, task["params"])
        assert max(cur.meta["levels"]["imbalance"]) >= 10
        val = torch.bincount(cur.val[1], minlength=cur.n_classes)
        assert int(val.max()) / int(val.min()) < 1.3
