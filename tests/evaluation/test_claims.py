"""The paper's claims table: verdict rule, combining a standard and an incremental run, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from metacurr.errors import ConfigError
from metacurr.evaluation.claims import (
    CLAIMS,
    DOES_NOT,
    HOLDS,
    NO_EVIDENCE,
    check_claims,
    claims_markdown,
    verdict,
)

POLICY = "policy:runs/x/policy"


def _write(folder, shifts: dict[str, float], incremental: bool = False):
    """results.csv with 2 tasks x 5 seeds; each controller's metrics are uniform's plus a fixed shift."""
    rng = np.random.default_rng(0)
    rows = []
    for task in ("a", "b"):
        for seed in range(10000, 10005):
            base = {m.metric: rng.uniform(0.2, 0.6) for m in CLAIMS}
            for ctrl, delta in shifts.items():
                row = {"controller": ctrl, "task": task, "seed": seed}
                # a controller level with uniform is exactly level (noise could put a CI off 0 by chance)
                row.update({k: v + delta + (rng.normal(0, 1e-3) if delta else 0.0) for k, v in base.items()})
                if not incremental:
                    row["churn_mean"] = row["forgetting_mean"] = None
                rows.append(row)
    folder.mkdir()
    pd.DataFrame(rows).to_csv(folder / "results.csv", index=False)
    return folder


def test_verdict_rule():
    assert verdict({"low": -0.2, "high": -0.1}, lower_is_better=True) == HOLDS
    assert verdict({"low": 0.1, "high": 0.2}, lower_is_better=True) == DOES_NOT
    assert verdict({"low": 0.1, "high": 0.2}, lower_is_better=False) == HOLDS
    assert verdict({"low": -0.1, "high": 0.2}, lower_is_better=False) == NO_EVIDENCE
    assert verdict({"low": float("nan"), "high": float("nan")}, lower_is_better=False) == NO_EVIDENCE
    assert verdict(None, lower_is_better=True) == NO_EVIDENCE


def test_claims_from_a_standard_run(tmp_path):
    folder = _write(tmp_path / "eval", {"uniform": 0.0, "heuristic": 0.05, POLICY: -0.05, f"open-loop:{POLICY}": 0.0})
    rows, ctrls = check_claims([folder])
    assert ctrls == ["uniform", "heuristic", POLICY]
    by = {r.claim.metric: r for r in rows}
    # heuristic is higher on every metric: better only where higher is better
    assert by["final_val_acc"].verdicts == {"heuristic": HOLDS, POLICY: DOES_NOT}
    assert by["shift_drop"].verdicts == {"heuristic": DOES_NOT, POLICY: HOLDS}
    assert by["shift_drop"].diffs[POLICY]["mean"] == pytest.approx(-0.05, abs=2e-3)
    # error distribution balance: a higher worst-class accuracy is better, a wider class spread is worse
    assert by["val_worst_class_acc"].verdicts == {"heuristic": HOLDS, POLICY: DOES_NOT}
    assert by["val_class_error_spread"].verdicts == {"heuristic": DOES_NOT, POLICY: HOLDS}
    assert by["churn_mean"].source is None and by["churn_mean"].verdicts["heuristic"] == NO_EVIDENCE
    table = claims_markdown(rows, ctrls, {POLICY: "learned policy"})
    assert table.count("\n") == len(CLAIMS) + 1 and "not measured" in table and "learned policy mean" in table


def test_volatility_of_runs_whose_weights_never_move_is_no_measurement(tmp_path):
    folder = _write(tmp_path / "eval", {"uniform": 0.0, "heuristic": 0.05, POLICY: -0.05})
    df = pd.read_csv(folder / "results.csv")
    df["weight_change"] = np.where(df["controller"] == "uniform", 0.0, 0.1)
    df.to_csv(folder / "results.csv", index=False)
    rows, ctrls = check_claims([folder])
    by = {r.claim.metric: r for r in rows}
    assert by["val_acc_volatility"].verdicts == {"heuristic": NO_EVIDENCE, POLICY: NO_EVIDENCE}
    assert np.isnan(by["val_acc_volatility"].means["uniform"][0]) and np.isfinite(by["val_acc_volatility"].means["heuristic"][0])
    assert by["shift_drop"].verdicts["heuristic"] == DOES_NOT  # other metrics keep every run
    assert "– (weights never move)" in claims_markdown(rows, ctrls)


def test_incremental_run_fills_churn_and_forgetting(tmp_path):
    std = _write(tmp_path / "std", {"uniform": 0.0, "heuristic": 0.0, POLICY: 0.0})
    inc = _write(tmp_path / "inc", {"uniform": 0.0, "heuristic": -0.05, POLICY: 0.05}, incremental=True)
    rows, _ = check_claims([std, inc])
    by = {r.claim.metric: r for r in rows}
    assert by["churn_mean"].source == str(inc) and by["churn_mean"].verdicts == {"heuristic": HOLDS, POLICY: DOES_NOT}
    assert by["final_val_acc"].source == str(std)  # the first folder that measured it
    assert by["final_val_acc"].verdicts["heuristic"] == NO_EVIDENCE


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no results.csv"):
        check_claims([tmp_path])
    folder = _write(tmp_path / "eval", {"uniform": 0.0, "dwa": 0.0})
    with pytest.raises(ConfigError, match="'heuristic' is not in the runs; valid choices: dwa, uniform"):
        check_claims([folder])
    two = _write(tmp_path / "two", {"uniform": 0.0, "heuristic": 0.0, "policy:a": 0.0, "policy:b": 0.0})
    with pytest.raises(ConfigError, match="several learned policies"):
        check_claims([two])


def test_claims_script_prints_the_table_and_fails_cleanly(tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "experiments" / "claims.py"
    spec = importlib.util.spec_from_file_location("claims_script", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    folder = _write(tmp_path / "eval", {"uniform": 0.0, "heuristic": 0.05, POLICY: -0.05})
    assert mod.main([str(folder)]) == 0
    out = capsys.readouterr().out
    assert "| better final accuracy | `final_val_acc` (higher) |" in out and "learned policy = `policy:runs/x/policy`" in out
    assert mod.main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("claims: error: no results.csv")
