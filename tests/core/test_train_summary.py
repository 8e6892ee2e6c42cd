"""`metacurr train` ends with a short human summary (3 significant digits) and the run folder; --json the machine form."""

from __future__ import annotations

import json

from metacurr.cli import main
from metacurr.cli.summary import human_summary

ARGS = ["train", "--control-steps", "2", "--inner-steps", "2", "--no-progress", "--wandb", "disabled"]


def test_human_summary_then_json(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*ARGS, "--out", str(out)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    s = json.loads((out / "summary.json").read_text())
    assert lines[0].startswith(f"val accuracy {s['final_val_acc']:#.3g}") and lines[-1].startswith(f"run folder: {out}")
    assert len(lines) == 4 and max(map(len, lines[:3])) < 100
    assert main([*ARGS, "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    s = json.loads((out / "summary.json").read_text())
    assert printed["final_val_acc"] == s["final_val_acc"] and printed["out"] == str(out)


def test_three_significant_digits_and_divergence():
    lines = human_summary({"final_val_acc": 0.2, "final_val_loss": 12.3456, "shift_acc": None, "per_stage_acc": [1.0, 0.41666],
                           "diverged": True, "wall_s": 2.0, "monitor_time_fraction": 0.05}, "runs/x")
    assert lines[0] == "DIVERGED; val accuracy 0.200, val loss 12.3, shift accuracy –"
    assert lines[1] == "stage accuracy (easy -> hard): 1.00 / 0.417"
    assert lines[2] == "training 2.00 s, monitors 5.00% of it"


def test_train_imports_no_agent_tracking_or_pyplot_code(tmp_path):
    """A short `train` pays for torch and its own work only (start-up: benchmarks/startup.py)."""
    import subprocess
    import sys

    code = ("import sys\nfrom metacurr.cli import main\n"
            f"main({[*ARGS, '--out', str(tmp_path / 'run')]!r})\n"
            "print('HEAVY', [m for m in ('stable_baselines3', 'wandb', 'matplotlib.pyplot', 'mnist1d', 'requests') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
