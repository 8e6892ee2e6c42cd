"""Which parameter sets a local sweep runs: every grid point, or seeded random draws.

Draws follow W&B's distribution definitions (``log_uniform``: min/max are natural-log exponents;
``log_uniform_values``: min/max are values; ``q_*``: rounded to multiples of ``q``). The same seed gives
the same draws, so a rerun finds the same run ids and resumes.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from metacurr.errors import ConfigError
from metacurr.sweeps.spec import ParamSpec, SweepSpec


def _q(x: float, f: dict) -> float | int:
    q = f.get("q", 1)
    v = round(x / q) * q
    return int(v) if isinstance(q, int) and float(v).is_integer() else float(v)


def draw(ps: ParamSpec, rng: np.random.Generator) -> Any:
    """One value of ``ps`` from its W&B distribution."""
    f, d = ps.fields, ps.distribution
    if d == "constant":
        return f["value"]
    if d == "categorical":
        i = rng.choice(len(f["values"]), p=f.get("probabilities"))
        return f["values"][int(i)]
    if d == "int_uniform":
        return int(rng.integers(int(f["min"]), int(f["max"]) + 1))
    if d in ("uniform", "q_uniform"):
        x = float(rng.uniform(f["min"], f["max"]))
    elif d in ("log_uniform", "q_log_uniform"):
        x = math.exp(rng.uniform(f["min"], f["max"]))
    elif d in ("log_uniform_values", "q_log_uniform_values"):
        x = math.exp(rng.uniform(math.log(f["min"]), math.log(f["max"])))
    elif d in ("normal", "q_normal"):
        x = float(rng.normal(f["mu"], f["sigma"]))
    elif d in ("log_normal", "q_log_normal"):
        x = math.exp(rng.normal(f["mu"], f["sigma"]))
    elif d in ("beta", "q_beta"):
        x = float(rng.beta(f["a"], f["b"]))
    else:  # pragma: no cover - spec.DISTRIBUTIONS and this function list the same names
        raise ConfigError(f"distribution {d!r} cannot be sampled locally")
    return _q(x, f) if d.startswith("q_") else x


def grid_points(params: tuple[ParamSpec, ...]) -> list[dict]:
    """Every combination of the categorical values, in file order (the last parameter varies fastest)."""
    names = [p.name for p in params]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(p.choices() for p in params))]


def random_points(params: tuple[ParamSpec, ...], count: int, seed: int) -> list[dict]:
    """``count`` independent draws of every parameter (seeded)."""
    rng = np.random.default_rng(seed)
    return [{p.name: draw(p, rng) for p in params} for _ in range(count)]


def plan(spec: SweepSpec, count: int | None = None, seed: int = 0) -> tuple[str, list[dict], list[str]]:
    """The parameter sets a local sweep runs.

    Args:
        spec: the sweep.
        count: at most this many runs (random / bayes: exactly this many draws); default ``run_cap``.
        seed: seed of the random draws.

    Returns:
        (method used, parameter sets, notices). ``bayes`` runs locally as ``random``: its model lives
        on the W&B server; the notice says so.

    Raises:
        ConfigError: a random sweep without a count.
    """
    count = count if count is not None else spec.run_cap
    notices = []
    method = spec.method
    if method == "bayes":
        notices.append("bayes search needs the W&B server; running it locally as random search over the same parameters")
        method = "random"
    if method == "grid":
        points = grid_points(spec.params)
        if count is not None and count < len(points):
            notices.append(f"grid has {len(points)} points; running the first {count} (--count / run_cap)")
            points = points[:count]
        return method, points, notices
    if count is None:
        raise ConfigError(f"a {spec.method} sweep needs a number of runs: --count N (or run_cap: in the sweep file)")
    return method, random_points(spec.params, count, seed), notices
