"""End-to-end PPO training rate of the main job's agent recipe with each batched-env setting.

    python benchmarks/train_agent_rates.py [--timesteps 32768] [--json FILE]

Runs ``metacurr train-agent --config experiments/main_agent.yaml --timesteps T`` three times, one after
the other (in one process, sharded over 2 processes, sharded + compiled), each into a temporary
folder, and prints the ``env_steps_per_s`` of each run's summary: what the env's speed-up is worth in
a real run, where episode resets (a new curriculum per episode) and the PPO update also take time.
About 3.5 minutes on 2 cores at the default T.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Every setting explicit: the recipe itself sets batched_processes: 2.
CONFIGS = {
    "one process, eager": ["--batched-processes", "1", "--no-batched-compile"],
    "2 processes, eager": ["--batched-processes", "2", "--no-batched-compile"],
    "2 processes, compiled": ["--batched-processes", "2", "--batched-compile"],
}


def train_agent_summary(config: Path, timesteps: int, extra: list[str]) -> dict:
    """Run ``metacurr train-agent --config CONFIG --timesteps T *extra`` in a fresh process, into a
    temporary folder, with W&B off; return the run's ``summary.json``."""
    env = {**os.environ, "WANDB_MODE": "disabled"}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-c", "import sys; from metacurr.cli import main; sys.exit(main(sys.argv[1:]))",
               "train-agent", "--config", str(config), "--timesteps", str(timesteps), "--out", str(Path(tmp) / "run"),
               "--wandb", "disabled", "--no-progress", *extra]  # fmt: skip
        subprocess.run(cmd, check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
        return json.loads((Path(tmp) / "run" / "summary.json").read_text())


def print_row(name: str, r: dict) -> None:
    print(f"{name:24s} {r['timesteps']:7d} steps  {r['wall_s']:6.1f} s  {r['env_steps_per_s']:6.1f} env-steps/s", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timesteps", type=int, default=32768)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    rows = {}
    for name, extra in CONFIGS.items():
        rows[name] = train_agent_summary(ROOT / "experiments" / "main_agent.yaml", args.timesteps, extra)
        print_row(name, rows[name])
    if args.json:
        Path(args.json).write_text(json.dumps({"timesteps": args.timesteps, "runs": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
