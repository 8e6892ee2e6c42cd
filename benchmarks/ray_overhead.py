"""Wall time of one evaluation on the process pool and on a local Ray instance, side by side.

    python benchmarks/ray_overhead.py [--seeds 8] [--reps 2] [--json FILE]
    python benchmarks/ray_overhead.py --startup     # Ray's start-up and a fresh worker's first imports

Runs the same ``metacurr evaluate`` command end to end in a fresh process, alternating
``--workers N`` (process pool; N = this machine's CPUs) and ``--backend ray`` (a local Ray instance sized
to this machine, started and stopped by the command), ``--reps`` times each, and prints the median wall
time of each, the evaluation's own wall time (its summary line) and whether the two ``results.csv`` agree
(timing columns aside). A third row, Ray joined (``--address``) to an instance this script started
beforehand, separates Ray's start-up from its per-cell cost. Each command writes into a fresh temporary folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import ray

ROOT = Path(__file__).resolve().parents[1]
TIMING = ["wall_s", "train_s", "monitor_s", "monitor_time_fraction"]
CLI = [sys.executable, "-c", "import sys; from metacurr.cli import main; sys.exit(main(sys.argv[1:]))"]


def run(args: list[str], out: Path, env: dict) -> tuple[float, float]:
    """(process wall s, the evaluation's own wall s from its summary line)."""
    t0 = time.perf_counter()
    p = subprocess.run([*CLI, *args, "--out", str(out), "--no-progress"], env=env, cwd=ROOT,
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(args)} failed (exit {p.returncode}): {p.stderr.strip()[-500:]}")
    wall = time.perf_counter() - t0
    m = re.search(r"diverged or failed; ([0-9.]+) s", p.stdout)
    return wall, float(m.group(1)) if m else float("nan")


def _imports() -> float:
    t0 = time.perf_counter()
    import metacurr.evaluation.execute  # noqa: F401 - what a cell's worker imports first
    import metacurr.tasks.mnist1d  # noqa: F401

    return time.perf_counter() - t0


def startup(cpus: int) -> None:
    """Where Ray's fixed cost goes: starting the instance, then each fresh worker's first imports."""
    t0 = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    init = time.perf_counter() - t0
    task = ray.remote(num_cpus=1)(_imports)
    t0 = time.perf_counter()
    first = ray.get([task.remote() for _ in range(cpus)])
    first_wall = time.perf_counter() - t0
    t0 = time.perf_counter()
    ray.get([task.remote() for _ in range(cpus)])
    again = time.perf_counter() - t0
    ray.shutdown()
    print(f"ray.init {init:.1f} s; first {cpus} tasks {first_wall:.1f} s (imports in the workers "
          f"{', '.join(f'{v:.1f}' for v in first)} s); next {cpus} tasks {again:.2f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--controllers", default="uniform,heuristic,dwa")
    ap.add_argument("--tasks", default="quick")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--startup", action="store_true", help="only time Ray's start-up and first worker imports")
    args = ap.parse_args()
    cpus = os.cpu_count() or 1
    if args.startup:
        startup(cpus)
        return 0
    base = ["evaluate", "--controllers", args.controllers, "--tasks", args.tasks, "--seeds", str(args.seeds)]
    rows: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        configs = {f"process pool, {cpus} workers": ["--workers", str(cpus)],
                   "Ray, local instance started by the command": ["--backend", "ray"],
                   "Ray, joining a running instance": ["--backend", "ray", "--address", "ADDRESS"]}
        # the running instance of the --address row belongs to this process (its start-up is not in that row)
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        address = ray.get_runtime_context().gcs_address
        env = {**os.environ, "WANDB_MODE": "disabled", "MPLBACKEND": "Agg"}  # after init: Ray's auth settings
        configs = {k: [address if a == "ADDRESS" else a for a in v] for k, v in configs.items()}
        try:
            for rep in range(args.reps):
                for i, (name, extra) in enumerate(configs.items()):
                    out = tmp / f"{i}-{rep}"
                    wall, ev = run(base + extra, out, env)
                    rows.setdefault(name, {"process_s": [], "evaluate_s": []})
                    rows[name]["process_s"].append(wall)
                    rows[name]["evaluate_s"].append(ev)
                    print(f"rep {rep}  {name:44s} {wall:6.1f} s (evaluate {ev:.1f} s)", flush=True)
            tables = [pd.read_csv(tmp / f"{i}-0" / "results.csv").drop(columns=TIMING) for i in range(len(configs))]
            same = all(t.equals(tables[0]) for t in tables[1:])
        finally:
            ray.shutdown()
    n_cells = len(tables[0])
    print(f"\n{n_cells} cells ({args.controllers} x {args.tasks} x {args.seeds} seeds), {cpus} CPUs, "
          f"median of {args.reps}:")
    print(f"{'':44s} {'process s':>9s} {'evaluate s':>10s}")
    for name, r in rows.items():
        print(f"{name:44s} {statistics.median(r['process_s']):9.1f} {statistics.median(r['evaluate_s']):10.1f}")
    print(f"results.csv identical (timing columns aside): {same}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cells": n_cells, "cpus": cpus, "controllers": args.controllers,
                                               "tasks": args.tasks, "seeds": args.seeds, "reps": args.reps,
                                               "identical_results": same, "runs": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
