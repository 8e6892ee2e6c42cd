"""Determinism of `metacurr evaluate`: the same arguments give the same results, whatever the scheduling.

(An env episode with the same seed and actions: tests/envs/test_env.py::test_same_seed_same_actions_identical;
`metacurr.train` with the same seed: tests/core/test_trainer_and_run.py::test_same_seed_same_numbers.)
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from metacurr.cli import main

#: results.csv columns that measure time, not results.
TIMING = {"wall_s", "train_s", "monitor_s", "monitor_time_fraction"}
ARGS = ["--controllers", "uniform,heuristic,random", "--tasks", "quick", "--seeds", "2", "--control-steps", "2",
        "--inner-steps", "2", "--no-progress"]


def _results(folder: Path) -> tuple[list[str], list[dict]]:
    with open(folder / "results.csv", newline="") as f:
        reader = csv.DictReader(f)
        rows = [{k: v for k, v in r.items() if k not in TIMING} for r in reader]
        return reader.fieldnames, rows


def _stats(folder: Path) -> dict:
    return json.loads((folder / "stats.json").read_text())  # no timing in it (wall time is in report.md only)


def _evaluate(out: Path, workers: str, capsys) -> None:
    assert main(["evaluate", *ARGS, "--workers", workers, "--out", str(out)]) == 0
    capsys.readouterr()


def test_evaluate_twice_gives_identical_results(tmp_path, capsys):
    """Two runs with the same arguments (2 worker processes, cells finishing in any order), and a third
    in this process (--workers 1): text-identical results.csv (timing columns aside) and stats.json."""
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "inline"
    _evaluate(a, "2", capsys)
    _evaluate(b, "2", capsys)
    _evaluate(c, "1", capsys)
    cols_a, rows_a = _results(a)
    assert len(rows_a) == 6 and "final_val_acc" in cols_a and not TIMING & set(rows_a[0])
    assert _results(b) == (cols_a, rows_a)  # text-identical, not just close
    assert _results(c) == (cols_a, rows_a)
    assert _stats(a) == _stats(b) == _stats(c)
