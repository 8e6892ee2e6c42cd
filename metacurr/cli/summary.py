"""What ``metacurr train`` prints at the end: a short human summary, or with ``--json`` the machine form."""

from __future__ import annotations

import json
import math
from pathlib import Path

#: The summary.json keys printed (the file has every metric).
KEYS = ("final_val_acc", "final_val_loss", "shift_acc", "per_stage_acc", "val_balanced_acc", "val_worst_class_acc",
        "diverged", "wall_s", "monitor_time_fraction")


def _g(v) -> str:
    """3 significant digits; '–' for a missing or non-finite value."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:#.3g}".rstrip(".")


def human_summary(summary: dict, out: Path) -> list[str]:
    """Four lines: the result, per-stage accuracy, the run's cost, the run folder and what is in it."""
    stages = " / ".join(_g(a) for a in summary.get("per_stage_acc") or [])
    result = (f"val accuracy {_g(summary.get('final_val_acc'))}, val loss {_g(summary.get('final_val_loss'))}, "
              f"shift accuracy {_g(summary.get('shift_acc'))}")
    if summary.get("diverged"):
        result = "DIVERGED; " + result
    frac = summary.get("monitor_time_fraction")
    cost = f"training {_g(summary.get('wall_s'))} s" + (f", monitors {_g(100 * frac)}% of it" if frac is not None else "")
    return [result, f"stage accuracy (easy -> hard): {stages}", cost, f"run folder: {out} (summary.json, metrics.jsonl, config.yaml, plots/, tb/)"]


def json_summary(summary: dict, out: Path) -> str:
    """One JSON line: the keys of `KEYS` at full precision and the run folder."""
    return json.dumps({**{k: summary.get(k) for k in KEYS}, "out": str(out)})
