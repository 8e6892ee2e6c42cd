"""Start-up and short-run wall time of the ``metacurr`` command line.

    python benchmarks/startup.py [--repeats 5] [--json startup.json]

Measures, each as the median wall time of ``--repeats`` fresh processes (so every import is paid):

- ``metacurr --help`` and ``metacurr list`` (goal: <= 1.5 s each);
- ``metacurr train`` on MNIST-1D + MLP with a budget whose training takes about 2 s
  (``--control-steps 20 --inner-steps 10``), with the default tracking (``--wandb auto``: offline
  when not logged in) and with ``--wandb disabled`` (goal: <= 5 s wall with the default tracking).
  The run's own ``wall_s`` (training inside the process) is printed beside the process's wall time;
  their difference is what start-up, tracking and artifacts cost.
- ``import metacurr`` (what a Python user pays before the first call).

Each command runs from the current interpreter's environment (``python -m metacurr.cli``), in a
temporary folder, with W&B told it is not logged in, so the figures do not depend on this machine's
W&B login.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = ["train", "--task", "mnist1d", "--arch", "mlp", "--controller", "heuristic", "--seed", "0",
         "--control-steps", "20", "--inner-steps", "10", "--no-progress"]


def _time(cmd: list[str], env: dict, cwd: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"startup: {' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()[-400:]}")
    return wall, res.stdout


def measure(repeats: int) -> dict:
    """Median wall seconds of each command over ``repeats`` fresh processes."""
    py = [sys.executable, "-m", "metacurr.cli"]
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "WANDB_API_KEY": "", "WANDB_MODE": "", "WANDB_DIR": tmp, "WANDB_SILENT": "true",
               "NETRC": str(Path(tmp) / "no-netrc"), "HOME": tmp}
        cases = {
            "import metacurr": [sys.executable, "-c", "import metacurr"],
            "metacurr --help": py + ["--help"],
            "metacurr list": py + ["list"],
        }
        for name, cmd in cases.items():
            walls = [_time(cmd, env, tmp)[0] for _ in range(repeats)]
            results[name] = {"wall_s": statistics.median(walls), "runs": walls}
        for tracking in ("auto", "disabled"):
            walls, inner = [], []
            for i in range(repeats):
                out = str(Path(tmp) / f"train-{tracking}-{i}")
                wall, _ = _time(py + TRAIN + ["--out", out, "--wandb", tracking], env, tmp)
                walls.append(wall)
                inner.append(json.loads((Path(out) / "summary.json").read_text())["wall_s"])
            results[f"metacurr train --wandb {tracking}"] = {
                "wall_s": statistics.median(walls), "runs": walls, "training_s": statistics.median(inner)}
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="fresh processes per command (median reported)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.repeats < 1:
        print("startup: error: --repeats must be >= 1", file=sys.stderr)
        return 2
    res = measure(args.repeats)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load:.1f}; "
          f"median of {args.repeats} fresh processes")
    print(f"{'command':<36} {'wall s':>7} {'training s':>11}")
    for name, r in res.items():
        train = f"{r['training_s']:.2f}" if "training_s" in r else ""
        print(f"{name:<36} {r['wall_s']:>7.2f} {train:>11}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load_average": load, "repeats": args.repeats, "results": res}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
