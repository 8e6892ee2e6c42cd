"""`metacurr evaluate` end to end with tiny budgets: outputs, fairness, resume, failures, bad input."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from metacurr.cli import main
from metacurr.errors import ConfigError
from metacurr.evaluation.collect import collect
from metacurr.evaluation.execute import execute
from metacurr.evaluation.plan import make_plan
from metacurr.evaluation.specs import parse_controllers
from metacurr.evaluation.task_sets import parse_tasks

TINY = ["--tasks", "quick", "--seeds", "2", "--control-steps", "2", "--inner-steps", "2", "--no-progress"]


def _rows(d: Path) -> list[dict]:
    with open(d / "results.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("workers", ["1", "2"])
def test_evaluate_smoke(workers, tmp_path, capfd):
    out = tmp_path / "ev"
    assert main(["evaluate", "--controllers", "uniform,heuristic", "--workers", workers, "--out", str(out), *TINY]) == 0
    rows = _rows(out)
    assert len(rows) == 4 and {r["controller"] for r in rows} == {"uniform", "heuristic"}
    for col in ("task", "arch", "seed", "final_val_acc", "shift_acc", "stage0_acc", "worst_stage_acc", "stage_acc_spread",
                "shift_drop", "early_stage_dominance", "val_acc_volatility", "confidence_volatility", "time_to_target",
                "val_ece", "wall_s", "monitor_time_fraction", "diverged"):
        assert col in rows[0], col
    assert {int(r["seed"]) for r in rows} == {10_000, 10_001}
    rep = (out / "report.md").read_text()
    assert "IQM" in rep and "probability of improvement" in rep.lower() and "No learned policy" in rep
    assert len(list((out / "plots").glob("*.png"))) >= 3
    printed = capfd.readouterr()
    assert "IQM" in printed.out and "wrote" in printed.out
    assert printed.err == ""  # workers never print (and --no-progress hides the bar)


def test_same_initialisation_for_every_controller_and_task_relative_time_to_target(tmp_path):
    specs = parse_controllers("uniform,sequential,best-static{weights=[0.8,0.1,0.1]},random")
    plan = make_plan(specs, parse_tasks("quick")[1], [10_000, 10_001], control_steps=2, inner_steps=2)
    execute(plan, tmp_path)
    recs = [json.loads(p.read_text()) for p in (tmp_path / "runs").glob("*.json")]
    for seed in (10_000, 10_001):
        first = [r["rows"][0] for r in recs if r["seed"] == seed]
        assert len(first) == 4
        keys = [k for k in first[0] if not k.startswith("curriculum/w_stage")]
        for row in first[1:]:
            assert {k: row[k] for k in keys} == {k: first[0][k] for k in keys}
        # initial weights differ (sequential starts one-hot), so the controllers really were different
        assert len({json.dumps([r[f"curriculum/w_stage{s}"] for s in range(3)]) for r in first}) > 1
    df = collect(plan, tmp_path)
    for _, g in df.groupby("seed"):
        best = g.loc[g["final_val_acc"].idxmax()]
        assert np.isfinite(best["time_to_target"])  # the best run reaches 95% of the best final accuracy


def test_resume_skips_finished_cells(tmp_path, capsys):
    out = str(tmp_path / "ev")
    assert main(["evaluate", "--controllers", "uniform", "--out", out, *TINY]) == 0
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ev" / "runs").glob("*.json")}
    capsys.readouterr()
    assert main(["evaluate", "--controllers", "uniform,heuristic", "--out", out, *TINY]) == 0
    assert "(2 run now, 2 resumed)" in capsys.readouterr().out
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "ev" / "runs").glob("*.json")}
    assert all(after[k] == v for k, v in stamps.items()) and len(after) == 4
    assert len(_rows(tmp_path / "ev")) == 4
    # a different budget is a different experiment: cells rerun
    assert main(["evaluate", "--controllers", "uniform", "--out", out, "--tasks", "quick", "--seeds", "2",
                 "--control-steps", "3", "--inner-steps", "2", "--no-progress"]) == 0
    assert "(2 run now, 0 resumed)" in capsys.readouterr().out


def test_failures_and_divergence_are_rows_not_crashes(tmp_path):
    from metacurr.evaluation.specs import ControllerSpec

    specs = [ControllerSpec("uniform", "uniform"),
             ControllerSpec("bad-weights", "best-static", kwargs={"weights": [1.0, 1.0]}),  # 2 weights, 3 stages
             ControllerSpec("huge-lr", "uniform", task={"lr": 1e6, "optimizer": "sgd"})]
    plan = make_plan(specs, parse_tasks("quick")[1], [10_000, 10_001], control_steps=2, inner_steps=2)
    execute(plan, tmp_path)
    df = collect(plan, tmp_path).set_index("controller")
    assert df.loc["bad-weights", "diverged"].all() and df.loc["bad-weights", "error"].str.contains("2 weights").all()
    assert df.loc["huge-lr", "diverged"].all() and not df.loc["uniform", "diverged"].any()


def test_incremental_mode(tmp_path):
    out = tmp_path / "inc"
    assert main(["evaluate", "--incremental", "--controllers", "uniform,best-static{weights=[0.5,0.25,0.25]}",
                 "--out", str(out), *TINY]) == 0
    rows = _rows(out)
    assert all(0 <= float(r["churn_mean"]) <= 1 and r["forgetting_stage0"] != "" for r in rows)
    with open(out / "incremental.csv") as f:
        rounds = list(csv.DictReader(f))
    assert len(rounds) == 2 * 2 * 3 and {r["round"] for r in rounds} == {"0", "1", "2"}
    assert [int(r["n_stages"]) for r in rounds[:3]] == [1, 2, 3] and rounds[0]["churn"] == ""
    assert "Incremental retraining" in (out / "report.md").read_text()


def test_incremental_carries_the_model_over():
    from metacurr.controllers import make_controller
    from metacurr.evaluation.incremental import run_incremental
    from metacurr.run import resolve_config

    cfg = resolve_config("digits", arch="mlp", n_stages=2, seed=10_000, control_steps=3, inner_steps=5,
                         params={"n_per_stage": 200, "n_val": 200, "n_test": 50, "n_shift": 100})
    summary, rows = run_incremental(cfg, lambda n: make_controller("uniform"))
    r0 = [r for r in rows if r["round"] == 0]
    r1 = [r for r in rows if r["round"] == 1]
    # round 1 starts where round 0 ended (same model), not from a fresh initialisation
    assert r1[0]["inner/val_loss"] == pytest.approx(r0[-1]["inner/val_loss"], rel=1e-5)
    assert r1[0]["inner/val_loss"] < r0[0]["inner/val_loss"]
    assert len(summary["rounds"]) == 2 and summary["churn_last"] is not None


@pytest.mark.parametrize("args,fragment", [
    (["--controllers", "uniform,nope"], "valid choices"),
    (["--controllers", "uniform", "--tasks", "nope"], "valid choices"),
    (["--controllers", "uniform", "--seeds", "0"], "positive integer"),
    (["--controllers", "uniform", "--workers", "0"], "positive integer"),
    (["--controllers", "uniform", "--tasks", "mnist1d:nope"], "valid choices"),
    (["--ablations", "missing.yaml"], "not found"),
])
def test_bad_input_exit_2_nothing_written(args, fragment, tmp_path, capsys):
    out = tmp_path / "ev"
    try:
        code = main(["evaluate", *args, "--out", str(out), "--no-progress"])
    except SystemExit as e:  # argparse rejects non-positive counts itself
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert fragment in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_ablations_cli(tmp_path):
    yml = tmp_path / "abl.yaml"
    yml.write_text(
        "tasks: quick\nseeds: 1\nvariants:\n"
        "  - {name: uniform, controller: uniform}\n"
        "  - {name: heuristic-cosine, controller: heuristic, controller_kwargs: {smoothing: 1.0}, task: {lr_schedule: cosine}}\n"
        "  - {name: heuristic-blind, controller: heuristic, mask: open-loop}\n"
    )
    out = tmp_path / "ab"
    assert main(["evaluate", "--ablations", str(yml), "--out", str(out), "--control-steps", "2", "--inner-steps", "2",
                 "--no-progress"]) == 0
    rows = {r["controller"]: r for r in _rows(out)}
    assert set(rows) == {"uniform", "heuristic-cosine", "heuristic-blind"}
    assert json.loads(rows["heuristic-cosine"]["task_overrides"]) == {"lr_schedule": "cosine"}
    assert rows["heuristic-blind"]["mask"] == '"open-loop"'
    cfg = [json.loads(p.read_text())["config"] for p in (out / "runs").glob("heuristic-cosine*.json")][0]
    assert cfg["task"]["lr_schedule"] == "cosine" and cfg["controller_kwargs"] == {"smoothing": 1.0}


def test_plan_enforces_eval_seeds():
    with pytest.raises(ConfigError, match="training range"):
        make_plan(parse_controllers("uniform"), parse_tasks("quick")[1], [0, 1])
