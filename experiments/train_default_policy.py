"""Train the policy shipped as ``policy:default`` and copy its bundle into the package.

    python experiments/train_default_policy.py [--config experiments/default_policy.yaml] [--out runs/default-policy] [--resume]
    python experiments/train_default_policy.py --transfer experiments/transfer.yaml --seed 1 [--out runs/transfer]

By default it trains the agent config of the shipped policy through `metacurr.train_agent`.
``--transfer`` ships one PPO seed of a transfer recipe instead (the YAML's fallback variant when it has
one): trained into OUT/agents/seedS unless that bundle is already there (pass the study's folder, e.g.
``--out runs/transfer``, to install an agent it trained), resumed from a checkpoint otherwise. Either way the bundle (``model.zip`` included) replaces ``metacurr/pretrained/default/`` (or ``--dest``)
atomically.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "experiments" / "default_policy.yaml"),
                   help="agent config to train (default %(default)s)")
    p.add_argument("--transfer", help="ship one PPO seed of this transfer recipe YAML instead of --config")
    p.add_argument("--seed", type=int, default=1, help="--transfer: which of the recipe's PPO seeds (default %(default)s)")
    p.add_argument("--out", default=str(ROOT / "runs" / "default-policy"))
    p.add_argument("--resume", action="store_true")
    p.add_argument("--wandb", default="disabled")
    p.add_argument("--timesteps", type=int, help="override the PPO timesteps (smoke runs)")
    p.add_argument("--dest", default=str(ROOT / "metacurr" / "pretrained" / "default"),
                   help="where the bundle is installed (default: the package's policy:default)")
    args = p.parse_args(argv)

    import metacurr
    from metacurr.studies.transfer import AgentStopped, load_transfer, recipe_agent

    overrides = {"train": {"total_timesteps": args.timesteps}} if args.timesteps else None
    try:
        if not args.transfer:
            res = metacurr.train_agent(args.config, out=args.out, overrides=overrides, resume=args.resume,
                                       progress=True, wandb=args.wandb)
            if res.status != "finished":
                print(f"interrupted: checkpoint saved in {args.out}/checkpoints; continue with --resume", file=sys.stderr)
                return 130
            bundle = res.policy
        else:
            study = load_transfer(args.transfer, args.timesteps, ROOT)
            if args.seed not in study.agents:
                raise metacurr.ConfigError(f"--seed {args.seed} is not a seed of {args.transfer}; valid choices: "
                                           f"{', '.join(map(str, study.agents))}")
            got = recipe_agent(study, args.seed, args.out)
            if isinstance(got, AgentStopped):
                print(f"interrupted: checkpoint saved in {args.out}/agents/seed{args.seed}/checkpoints; rerun to resume",
                      file=sys.stderr)
                return 130
            (plain, derived), _ = got
            bundle = derived or plain
    except metacurr.ConfigError as e:
        print(f"train_default_policy: error: {e}", file=sys.stderr)
        return 2
    dest = Path(args.dest)
    tmp = dest.with_name(".default.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(bundle, tmp)  # model.zip included: plain PPO.load works on it
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    print(f"installed {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
