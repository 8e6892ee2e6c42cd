"""``metacurr train-agent``: PPO training of a rebalancing policy, written as a policy bundle."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    p = sub.add_parser("train-agent", help="train a PPO controller agent (writes OUT/policy/)")
    p.add_argument("--config", help="agent YAML (name:, env:, ppo:, train:); defaults apply when omitted")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints")
    p.add_argument("--timesteps", type=int, help="override train.total_timesteps")
    p.add_argument("--n-envs", type=int, help="override train.n_envs")
    p.add_argument("--vec-env", help="override train.vec_env (dummy, subproc, batched, grouped)")
    p.add_argument("--batched-processes", type=int, help="override train.batched_processes (vec_env: batched)")
    p.add_argument("--batched-compile", action=argparse.BooleanOptionalAction, default=None,
                   help="override train.batched_compile: torch.compile the batched env's inner step and probe pass")
    p.add_argument("--wandb", default="auto", choices=["auto", "online", "offline", "disabled", "off"],
                   help="W&B mode (auto = online when logged in, else offline)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: agent training pulls in stable-baselines3, which `metacurr --help`
    # and the other subcommands should not pay for.
    from metacurr.agents.job import train_agent
    from metacurr.cli.common import check_out_dir

    overrides: dict = {"train": {}}
    if args.timesteps is not None:
        overrides["train"]["total_timesteps"] = args.timesteps
    if args.n_envs is not None:
        overrides["train"]["n_envs"] = args.n_envs
    if args.vec_env is not None:
        overrides["train"]["vec_env"] = args.vec_env
    if args.batched_processes is not None:
        overrides["train"]["batched_processes"] = args.batched_processes
    if args.batched_compile is not None:
        overrides["train"]["batched_compile"] = args.batched_compile
    out = check_out_dir(args.out)
    res = train_agent(args.config, out=out, overrides=overrides, resume=args.resume, progress=not args.no_progress,
                      wandb="disabled" if args.wandb == "off" else args.wandb)
    print(json.dumps({k: v for k, v in res.summary.items() if v is not None}, default=str))
    if res.status == "interrupted":
        print(f"interrupted: checkpoint saved in {out}/checkpoints; continue with --resume")
        return 130
    print(f"wrote {res.policy} (use it: --controller policy:{res.policy})")
    return 0
