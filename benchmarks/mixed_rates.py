"""PPO training rate on a mixed task distribution: the grouped batched env against SubprocVecEnv.

    python benchmarks/mixed_rates.py [--timesteps 4096] [--distribution mixed] [--n-envs N] [--reps 1] [--json FILE]
    python benchmarks/mixed_rates.py --profile [--timesteps 2048]     # where the grouped run's time goes

The agent is the one ``experiments/transfer.yaml`` trains (its ``base`` agent config with its ``agent``
overrides and its first PPO seed: equivariant policy, observation layout 3, 16 envs, the same PPO
settings), on ``--distribution`` (default ``mixed``: MNIST-1D with an MLP or a CNN, 2-5 stages, 8
(family, arch, stage count) groups). It runs ``metacurr train-agent`` on that config with
``vec_env: grouped`` (one batched program per group, all in the learner's process), with ``vec_env:
grouped`` and ``group_processes: true`` (each group's batched program in its own worker process) and
with ``vec_env: subproc`` (one process per env), one after the other (``--reps`` alternating rounds),
on the same distribution, seed and timesteps, and prints each run's ``env_steps_per_s`` (its summary:
PPO's rollouts and updates, episode resets included; env start-up excluded), each grouped / subproc
ratio and the load average before and after each run (other processes share the CPUs). A few thousand
timesteps take about 2-4 minutes per run on 2 busy cores. ``--profile`` instead runs the grouped
training once in this process under cProfile and prints the functions with the most cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path

import yaml
from train_agent_rates import ROOT, print_row, train_agent_summary

from metacurr.agents.config import load_agent_config
from metacurr.config import load_yaml, merge

#: Each measured set-up: its name and its ``train`` overrides.
VEC_ENVS = {"grouped": {"vec_env": "grouped"}, "grouped-processes": {"vec_env": "grouped", "group_processes": True},
            "subproc": {"vec_env": "subproc"}}


def transfer_agent(distribution: str, n_envs: int | None = None) -> dict:
    """experiments/transfer.yaml's agent (base + overrides, first seed) on ``distribution`` (and with
    ``n_envs`` envs when given), as a dict."""
    spec = load_yaml(str(ROOT / "experiments" / "transfer.yaml"))
    train = {"seed": spec["seeds"][0], **({"n_envs": n_envs} if n_envs else {})}
    agent = merge(dict(spec.get("agent") or {}), {"env": {"distribution": distribution}, "train": train})
    data = merge(load_yaml(str(ROOT / spec["base"])), agent)
    for train in VEC_ENVS.values():  # a bad distribution or n_envs fails here, before any run
        load_agent_config(None, merge(data, {"train": train}))
    return data


def profile_grouped(config: Path, timesteps: int, out: Path) -> None:
    """The grouped run in this process under cProfile; prints the top functions by cumulative time."""
    from metacurr.cli import main as cli  # imported here: the timed runs start train-agent in fresh processes

    os.environ["WANDB_MODE"] = "disabled"
    prof = cProfile.Profile()
    prof.runcall(cli, ["train-agent", "--config", str(config), "--timesteps", str(timesteps), "--out", str(out),
                       "--wandb", "disabled", "--no-progress", "--vec-env", "grouped"])  # fmt: skip
    pstats.Stats(prof).sort_stats("cumulative").print_stats(40)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--timesteps", type=int, default=4096)
    ap.add_argument("--distribution", default="mixed", help="training distribution (envs/task_distribution.py)")
    ap.add_argument("--n-envs", type=int, help="envs of every set-up (default: the recipe's)")
    ap.add_argument("--reps", type=int, default=1, help="rounds of the three set-ups, one after the other")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--profile", action="store_true", help="profile one grouped run in this process instead")
    args = ap.parse_args()
    data = transfer_agent(args.distribution, args.n_envs)
    if args.profile:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "agent.yaml"
            config.write_text(yaml.safe_dump(data))
            profile_grouped(config, args.timesteps, Path(tmp) / "run")
        return 0
    rows: dict[str, list[dict]] = {v: [] for v in VEC_ENVS}
    with tempfile.TemporaryDirectory() as tmp:
        configs = {}
        for vec, train in VEC_ENVS.items():
            configs[vec] = Path(tmp) / f"{vec}.yaml"
            configs[vec].write_text(yaml.safe_dump(merge(data, {"train": train})))
        for _ in range(args.reps):
            for vec in VEC_ENVS:
                load_before = os.getloadavg()
                r = train_agent_summary(configs[vec], args.timesteps, [])
                r["load_avg_before"], r["load_avg_after"] = load_before, os.getloadavg()
                rows[vec].append(r)
                print_row(vec, r)
                print(f"  load average {load_before[0]:.2f} -> {r['load_avg_after'][0]:.2f}", flush=True)
    rate = {v: sum(r["env_steps_per_s"] for r in rows[v]) / len(rows[v]) for v in VEC_ENVS}
    ratio = {v: rate[v] / rate["subproc"] for v in VEC_ENVS if v != "subproc"}
    for v, x in ratio.items():
        print(f"{v} / subproc = {rate[v]:.1f} / {rate['subproc']:.1f} env-steps/s = {x:.2f}x "
              f"({args.distribution}, {args.timesteps} timesteps, mean of {args.reps})")  # fmt: skip
    if args.json:
        report = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
                  "machine": platform.machine(), "python": platform.python_version(), "distribution": args.distribution,
                  "timesteps": args.timesteps, "n_envs": data["train"]["n_envs"], "reps": args.reps, "agent": data, "env_steps_per_s": rate, "ratio": ratio,
                  "runs": rows}  # fmt: skip
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
