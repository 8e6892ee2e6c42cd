"""Train the policy shipped as ``policy:default`` and copy its bundle into the package.

    python experiments/train_default_policy.py [--config experiments/default_policy.yaml] [--out runs/default-policy]

Reruns from scratch (or ``--resume``) and replaces ``metacurr/pretrained/default/`` atomically.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "experiments" / "default_policy.yaml"))
    p.add_argument("--out", default=str(ROOT / "runs" / "default-policy"))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--wandb", default="disabled")
    args = p.parse_args()

    from metacurr.cli import main as cli

    rc = cli(["train-agent", "--config", args.config, "--out", args.out, "--wandb", args.wandb] + (["--resume"] if args.resume else []))
    if rc != 0:
        return rc
    dest = ROOT / "metacurr" / "pretrained" / "default"
    tmp = dest.with_name(".default.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(Path(args.out) / "policy", tmp)  # model.zip included: plain PPO.load works on it
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    print(f"installed {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
