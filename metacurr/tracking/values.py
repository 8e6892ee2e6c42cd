"""Turning metric rows into values every backend accepts (plain Python, no numpy)."""

from __future__ import annotations

import math
import numbers
from typing import Any


def scalar(value: Any) -> float | int | None:
    """A loggable number, or None for anything that is not a real scalar (lists, strings, None).

    Bools become 0/1 so flags like ``diverged`` plot as a curve.
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    item = getattr(value, "item", None)  # numpy / torch 0-d values
    if callable(item) and getattr(value, "ndim", 1) == 0:
        return scalar(item())
    return None


def scalars(metrics: dict[str, Any]) -> dict[str, float | int]:
    """The scalar entries of a metrics row (non-scalars dropped: they belong in the summary)."""
    out = {}
    for k, v in metrics.items():
        s = scalar(v)
        if s is not None:
            out[str(k)] = s
    return out


def plain(value: Any) -> Any:
    """JSON-ready copy: numpy values to Python, non-finite floats to None, tuples to lists."""
    s = scalar(value) if not isinstance(value, bool) else value
    if s is not None:
        return None if isinstance(s, float) and not math.isfinite(s) else s
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return plain(tolist())
    if value is None or isinstance(value, str):
        return value
    return str(value)
