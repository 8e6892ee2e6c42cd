"""Train the policy shipped as ``policy:default`` and copy its bundle into the package.

    python experiments/train_default_policy.py [--config experiments/default_policy.yaml] [--out runs/default-policy]

Reruns from scratch (or ``--resume``) through `metacurr.train_agent` and replaces
``metacurr/pretrained/default/`` (or ``--dest``) atomically.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "experiments" / "default_policy.yaml"))
    p.add_argument("--out", default=str(ROOT / "runs" / "default-policy"))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--wandb", default="disabled")
    p.add_argument("--timesteps", type=int, help="override the PPO timesteps (smoke runs)")
    p.add_argument("--dest", default=str(ROOT / "metacurr" / "pretrained" / "default"),
                   help="where the bundle is installed (default: the package's policy:default)")
    args = p.parse_args(argv)

    import metacurr

    overrides = {"train": {"total_timesteps": args.timesteps}} if args.timesteps else None
    try:
        res = metacurr.train_agent(args.config, out=args.out, overrides=overrides, resume=args.resume,
                                   progress=True, wandb=args.wandb)
    except metacurr.ConfigError as e:
        print(f"train_default_policy: error: {e}", file=sys.stderr)
        return 2
    if res.status != "finished":
        print(f"interrupted: checkpoint saved in {args.out}/checkpoints; continue with --resume", file=sys.stderr)
        return 130
    dest = Path(args.dest)
    tmp = dest.with_name(".default.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(res.policy, tmp)  # model.zip included: plain PPO.load works on it
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    print(f"installed {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
