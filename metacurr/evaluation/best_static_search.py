"""The best-static grid search: the best fixed stage weights for a task, chosen on training seeds.

    w* = argmax_{w in G_m} mean_{seed in search seeds} final_val_acc(run(task, seed, w))

G_m is the simplex grid ``{k / m : k in N^S, sum_s k_s = m}`` (plus uniform). Resolution m is the
largest (at most 4) that keeps the grid at ``max_points`` candidates or fewer, e.g. step 1/3 for 3
stages (10 points), 1/2 for 4 stages, one-hot corners for 5 or more.

The search runs on *training* seeds (`metacurr.seeds.search_seeds`, disjoint from every evaluation
seed) and reads only ``val`` of those runs: never an evaluation seed's run and never the ``shift`` set.
Ties go to the lower final val loss, then to the candidate closer to uniform. The winner is run by the
`metacurr.controllers.best_static.BestStatic` controller, which holds only the weights.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from metacurr.config import RunConfig, from_dict, to_dict
from metacurr.controllers.base import normalize
from metacurr.controllers.best_static import BestStatic
from metacurr.errors import ConfigError
from metacurr.run import run_episode
from metacurr.seeds import check_train_seeds, search_seeds

MAX_RESOLUTION = 4


def simplex_grid(n_stages: int, resolution: int) -> list[list[float]]:
    """All weight vectors with entries k_s / resolution, k_s >= 0 integers summing to resolution."""
    if n_stages < 1 or resolution < 1:
        raise ConfigError(f"simplex grid needs n_stages >= 1 and resolution >= 1, got {n_stages}, {resolution}")
    pts = []
    # stars and bars: choose the bar positions among resolution + n_stages - 1 slots
    for bars in itertools.combinations(range(resolution + n_stages - 1), n_stages - 1):
        edges = (-1, *bars, resolution + n_stages - 1)
        pts.append([(edges[i + 1] - edges[i] - 1) / resolution for i in range(n_stages)])
    return pts


def default_resolution(n_stages: int, max_points: int = 10) -> int:
    """Largest resolution m <= 4 whose grid has at most ``max_points`` points (at least 1)."""
    m = 1
    for cand in range(1, MAX_RESOLUTION + 1):
        if math.comb(cand + n_stages - 1, n_stages - 1) <= max_points:
            m = cand
    return m


def candidate_grid(n_stages: int, grid: int | Sequence[Sequence[float]] | None = None, max_points: int = 10) -> list[list[float]]:
    """The candidates: an explicit list, a resolution, or the default grid; uniform always included."""
    if grid is None:
        pts = simplex_grid(n_stages, default_resolution(n_stages, max_points))
    elif isinstance(grid, int) and not isinstance(grid, bool):
        pts = simplex_grid(n_stages, grid)
    else:
        pts = [list(map(float, w)) for w in grid]
        for w in pts:
            if len(w) != n_stages or not all(math.isfinite(v) and v >= 0 for v in w) or sum(w) <= 0:
                raise ConfigError(f"grid point {w} is not {n_stages} non-negative weights with a positive sum")
        pts = [list(normalize(np.array(w))) for w in pts]
    uniform = [1.0 / n_stages] * n_stages
    if not any(np.allclose(w, uniform) for w in pts):
        pts.append(uniform)
    return [[float(v) for v in w] for w in pts]


def score_static(payload: dict) -> dict:
    """Run one search candidate (top-level so a process pool can pickle it).

    ``payload`` = {"config": RunConfig dict with controller best-static and its weights}. Returns the
    candidate's final val accuracy / loss (never the shift set) and whether it diverged.
    """
    cfg = from_dict(RunConfig, payload["config"])
    summary, _ = run_episode(cfg)
    acc, loss = summary.get("final_val_acc"), summary.get("final_val_loss")
    return {
        "weights": list(cfg.controller_kwargs["weights"]),
        "seed": cfg.task.seed,
        "val_acc": acc if acc is not None and not summary["diverged"] else None,
        "val_loss": loss if loss is not None and not summary["diverged"] else None,
    }



def search_plan(
    cfg,
    grid: int | Sequence[Sequence[float]] | None = None,
    seeds: Iterable[int] | None = None,
    max_points: int = 10,
) -> dict:
    """The candidate runs of a search, without running them (lets a caller schedule them).

    Returns:
        ``{"candidates": [weights, ...], "seeds": [...], "payloads": [score_static payload, ...]}``,
        payloads candidate-major (all seeds of candidate 0 first).
    """
    seeds = check_train_seeds(search_seeds(1) if seeds is None else list(seeds))
    cands = candidate_grid(cfg.task.n_stages, grid, max_points)
    payloads = []
    for w in cands:
        for s in seeds:
            c = dataclasses.replace(cfg, controller=BestStatic.name, controller_kwargs={"weights": w},
                                    task=dataclasses.replace(cfg.task, seed=int(s)))
            payloads.append({"config": to_dict(c)})
    return {"candidates": cands, "seeds": seeds, "payloads": payloads}

def select(plan: dict, results: list[dict]) -> dict:
    """Pick the best candidate of `search_plan`'s ``plan`` from its payloads' `score_static` results.

    A failed run (a result without ``val_acc``) makes its candidate ineligible.
    """
    cands, seeds = plan["candidates"], plan["seeds"]
    n = len(cands[0])
    uniform = np.full(n, 1.0 / n)
    table = []
    for i, w in enumerate(cands):
        res = results[i * len(seeds) : (i + 1) * len(seeds)]
        accs = [r.get("val_acc") for r in res]
        losses = [r.get("val_loss") for r in res]
        ok = all(a is not None for a in accs)
        table.append({
            "weights": w,
            "val_acc": float(np.mean(accs)) if ok else None,
            "val_loss": float(np.mean(losses)) if ok and all(v is not None for v in losses) else None,
        })

    def key(i: int) -> tuple:
        t = table[i]
        acc = -math.inf if t["val_acc"] is None else t["val_acc"]
        loss = math.inf if t["val_loss"] is None else t["val_loss"]
        return (-acc, loss, float(np.abs(np.array(t["weights"]) - uniform).sum()))

    best = min(range(len(cands)), key=key)
    return {"weights": cands[best], "val_acc": table[best]["val_acc"], "seeds": list(seeds), "candidates": table}

def search(
    cfg,
    grid: int | Sequence[Sequence[float]] | None = None,
    seeds: Iterable[int] | None = None,
    map_fn: Callable = map,
    max_points: int = 10,
) -> dict:
    """Grid-search static weights for the task of ``cfg`` on training seeds.

    Args:
        cfg: a `RunConfig` (its task and budget are used; its seed and controller are replaced).
        grid: resolution m of the simplex grid, an explicit list of weight vectors, or None (default).
        seeds: training seeds (default `search_seeds(1)`); every seed must be <= TRAIN_SEED_MAX.
        map_fn: ``map``-like callable used to run the candidates (e.g. a process pool's ``map``).
        max_points: size cap of the default grid.

    Returns:
        JSON-serialisable dict: ``weights`` (the best), ``val_acc`` (its mean search score), ``seeds``,
        ``candidates`` (every candidate's weights, mean val accuracy and loss).
    """
    plan = search_plan(cfg, grid, seeds, max_points)
    return select(plan, list(map_fn(score_static, plan["payloads"])))
