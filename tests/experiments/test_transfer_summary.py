"""The transfer study's statistics on a hand-made results table."""

from __future__ import annotations

import pandas as pd
import pytest

from metacurr.studies.transfer import group_difference, paired_rows


@pytest.fixture
def results(tmp_path):
    rows = []
    # two tasks x two seeds; uniform 0.5 everywhere; recipe A's two agents +0.1 / +0.3, recipe B's +0.0 / +0.2
    for task in ("t1", "t2"):
        for seed in (10000, 10001):
            rows += [{"task": task, "seed": seed, "controller": "uniform", "final_val_acc": 0.5},
                     {"task": task, "seed": seed, "controller": "a1", "final_val_acc": 0.6},
                     {"task": task, "seed": seed, "controller": "a2", "final_val_acc": 0.8},
                     {"task": task, "seed": seed, "controller": "b1", "final_val_acc": 0.5},
                     {"task": task, "seed": seed, "controller": "b2", "final_val_acc": 0.7}]
    path = tmp_path / "results.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_group_difference_averages_each_recipes_agents_per_task_and_seed(results):
    r = group_difference(results, ["a1", "a2"], ["b1", "b2"])
    # (0.6 + 0.8) / 2 - (0.5 + 0.7) / 2 = 0.1 on each of the 4 (task, seed) pairs
    assert r["n"] == 4 and r["mean"] == pytest.approx(0.1)
    assert r["low"] == pytest.approx(0.1) and r["high"] == pytest.approx(0.1)


def test_paired_rows_pool_agent_seeds_and_report_their_spread(results):
    (row,) = paired_rows(results, {"A": ["a1", "a2"]})
    assert row["n"] == 8 and row["pooled"][0] == pytest.approx(0.2)
    assert row["spread"] == pytest.approx((0.1, 0.3))


def test_set_average_weighs_each_set_then_each_task_the_same(tmp_path, results):
    from metacurr.studies.transfer import across_sets, set_average

    # a second set with one task where recipe A is 0.4 below uniform
    rows = [{"task": "t3", "seed": s, "controller": c, "final_val_acc": v}
            for s in (10000, 10001) for c, v in (("uniform", 0.5), ("a1", 0.1), ("a2", 0.1))]
    other = tmp_path / "other.csv"
    pd.DataFrame(rows).to_csv(other, index=False)
    r = set_average({"first": results, "second": other}, ["a1", "a2"], ["uniform"])
    # first set: +0.2 on each task; second: -0.4; sets weigh the same, not their 4 and 2 pairs
    assert r["mean"] == pytest.approx((0.2 - 0.4) / 2) and r["n"] == 6
    text = across_sets({"first": results, "second": other}, {"A": ["a1", "a2"]}, ["uniform"])
    assert "| A | -0.100 [-0.100, -0.100] |" in text and "`first`, `second`" in text


def test_a_recipe_that_extends_another_changes_only_what_it_names(tmp_path):
    from pathlib import Path

    from metacurr.studies.transfer import load_transfer

    root = Path(__file__).resolve().parents[2]
    ablation = tmp_path / "no-trends.yaml"
    ablation.write_text(f"extends: {root / 'experiments' / 'transfer.yaml'}\n"
                        "agent: {env: {hide_features: [loss_trend]}}\nseeds: [4]\neval: {baselines: uniform}\n")
    parent, child = load_transfer(root / "experiments" / "transfer.yaml", root=root), load_transfer(ablation, root=root)
    assert list(child.agents) == [4] and child.agents[4].env.hide_features == ["loss_trend"]
    assert child.agents[4].policy == parent.agents[1].policy == "equivariant"  # inherited
    assert child.agents[4].train.total_timesteps == parent.agents[1].train.total_timesteps
    assert child.fallback == parent.fallback and child.spec["eval"]["plain"] is False
    assert child.spec["eval"]["baselines"] == "uniform" and parent.spec["eval"]["baselines"] != "uniform"
