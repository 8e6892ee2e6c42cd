"""Start-up and short-run wall time of the ``metacurr`` command line.

    python benchmarks/startup.py [--repeats 5] [--json startup.json]

Measures, each as the median wall time of ``--repeats`` fresh processes (so every import is paid):

- ``metacurr --help`` and ``metacurr list`` (goal: <= 1.5 s each);
- ``metacurr train`` on MNIST-1D + MLP with a budget whose training takes about 2 s
  (``--control-steps 60 --inner-steps 20``), with the default tracking (``--wandb auto``: offline
  when not logged in) and with ``--wandb disabled`` (goal: <= 5 s wall with the default tracking).
  The run's own ``wall_s`` (training inside the process) is printed beside the process's wall time;
  their difference is what start-up, tracking and artifacts cost.
- ``import metacurr`` (what a Python user pays before the first call).

Each command runs from the current interpreter's environment (``python -m metacurr.cli``), in a
temporary folder, with W&B told it is not logged in, so the figures do not depend on this machine's
W&B login.

``--baseline-ref REF`` also measures the code of a git commit (exported with ``git archive`` into a
temporary folder and put first on ``PYTHONPATH``), interleaved with the working tree's, command by
command: a before/after comparison from one run on one machine.
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
         "--control-steps", "60", "--inner-steps", "20", "--no-progress"]


def _time(cmd: list[str], env: dict, cwd: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"startup: {' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()[-400:]}")
    return wall, res.stdout


def export_ref(ref: str, dest: Path) -> Path:
    """The repository's files at ``ref`` in ``dest``, importable as ``metacurr`` from ``dest``."""
    root = Path(__file__).resolve().parent.parent
    archive = subprocess.run(["git", "-C", str(root), "archive", ref], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    for pkg in ("envs", "agents"):  # installed as metacurr.envs / metacurr.agents (setuptools package-dir)
        link = dest / "metacurr" / pkg
        if not link.exists():
            link.symlink_to(dest / pkg, target_is_directory=True)
    return dest


def measure(repeats: int, baseline: Path | None = None) -> dict:
    """Median wall seconds of each command over ``repeats`` fresh processes; with ``baseline``, the same
    commands run from that source tree too, alternating with the working tree's."""
    py = [sys.executable, "-m", "metacurr.cli"]
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        # WANDB_MODE unset, not empty: wandb rejects an empty mode, and `auto` must start its offline run
        env = {**{k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_DISABLED")},
               "WANDB_API_KEY": "", "WANDB_DIR": tmp, "WANDB_SILENT": "true",
               "NETRC": str(Path(tmp) / "no-netrc"), "HOME": tmp}
        envs = {"": env}
        if baseline is not None:
            envs["baseline "] = {**env, "PYTHONPATH": os.pathsep.join([str(baseline), env.get("PYTHONPATH", "")])}
        for e in envs.values():  # warm-up: byte-compile both trees, fill the OS file cache
            _time(py + ["list"], e, tmp)
            _time(py + TRAIN + ["--out", str(Path(tmp) / "warm"), "--wandb", "disabled", "--control-steps", "1"], e, tmp)
        cases = {
            "import metacurr": [sys.executable, "-c", "import metacurr"],
            "metacurr --help": py + ["--help"],
            "metacurr list": py + ["list"],
        }
        for name, cmd in cases.items():
            walls: dict = {k: [] for k in envs}
            for _ in range(repeats):
                for k, e in envs.items():
                    walls[k].append(_time(cmd, e, tmp)[0])
            for k in envs:
                results[k + name] = {"wall_s": statistics.median(walls[k]), "runs": walls[k]}
        for tracking in ("auto", "disabled"):
            walls, inner = {k: [] for k in envs}, {k: [] for k in envs}
            for i in range(repeats):
                for j, (k, e) in enumerate(envs.items()):
                    out = str(Path(tmp) / f"train-{tracking}-{i}-{j}")
                    wall, _ = _time(py + TRAIN + ["--out", out, "--wandb", tracking], e, tmp)
                    walls[k].append(wall)
                    inner[k].append(json.loads((Path(out) / "summary.json").read_text())["wall_s"])
                    if tracking == "auto" and not list(Path(out).glob("wandb/offline-run-*/run-*.wandb")):
                        raise SystemExit(f"startup: {k}train --wandb auto wrote no offline W&B run in {out}")
            for k in envs:
                results[f"{k}metacurr train --wandb {tracking}"] = {
                    "wall_s": statistics.median(walls[k]), "runs": walls[k], "training_s": statistics.median(inner[k])}
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5, help="fresh processes per command (median reported)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--baseline-ref", help="also measure this git commit's code (before/after in one run)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        print("startup: error: --repeats must be >= 1", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as base:
        baseline = None
        if args.baseline_ref:
            try:
                baseline = export_ref(args.baseline_ref, Path(base))
            except subprocess.CalledProcessError:
                print(f"startup: error: cannot export git ref {args.baseline_ref!r}", file=sys.stderr)
                return 2
        res = measure(args.repeats, baseline)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.node()}: {os.cpu_count()} CPUs, Python {platform.python_version()}, load average {load:.1f}; "
          f"median of {args.repeats} fresh processes")
    if args.baseline_ref:
        print(f"baseline = the code at {args.baseline_ref}, measured alternately with the working tree's")
    print(f"{'command':<46} {'wall s':>7} {'training s':>11}")
    for name, r in res.items():
        train = f"{r['training_s']:.2f}" if "training_s" in r else ""
        print(f"{name:<46} {r['wall_s']:>7.2f} {train:>11}")
    if args.json:
        Path(args.json).write_text(json.dumps({"load_average": load, "repeats": args.repeats, "results": res}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
