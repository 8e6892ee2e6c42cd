"""Train the policy shipped as ``policy:default`` and copy its bundle into the package.

    python experiments/train_default_policy.py [--transfer experiments/transfer.yaml] [--seed 1] [--out runs/transfer]
    python experiments/train_default_policy.py --config experiments/default_policy.yaml [--out runs/default-policy] [--resume]

By default it ships PPO seed 1 of the transfer recipe ``experiments/transfer.yaml`` (its fallback
variant: the stage-equivariant policy with the fallback toward uniform), the recipe's best agent of
three on the validation set (``python experiments/transfer.py --out runs/transfer``): trained into
OUT/agents/seedS unless that bundle is already there (pass the study's folder to install an agent it
trained), resumed from a checkpoint otherwise. ``--config`` trains an agent config through
`metacurr.train_agent` instead (``experiments/default_policy.yaml``: the MLP policy over padded stage
slots). Either way the bundle (``model.zip`` included) replaces ``metacurr/pretrained/default/`` (or
``--dest``) atomically.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--transfer", default=str(ROOT / "experiments" / "transfer.yaml"),
                   help="ship one PPO seed of this transfer recipe YAML (default %(default)s)")
    p.add_argument("--seed", type=int, default=1, help="which of the recipe's PPO seeds (default %(default)s)")
    p.add_argument("--config", help="train this agent config instead of a transfer recipe's agent")
    p.add_argument("--out", help="the study folder (default runs/transfer) or, with --config, the run folder "
                                 "(default runs/default-policy)")
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
        if args.config:
            args.out = args.out or str(ROOT / "runs" / "default-policy")
            res = metacurr.train_agent(args.config, out=args.out, overrides=overrides, resume=args.resume,
                                       progress=True, wandb=args.wandb)
            if res.status != "finished":
                print(f"interrupted: checkpoint saved in {args.out}/checkpoints; continue with --resume", file=sys.stderr)
                return 130
            bundle = res.policy
        else:
            args.out = args.out or str(ROOT / "runs" / "transfer")
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
