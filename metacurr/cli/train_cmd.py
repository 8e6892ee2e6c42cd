"""``metacurr train``: one inner training run under a controller."""

from __future__ import annotations

import argparse
import sys

from metacurr.cli.common import add_budget_args, add_threads_arg, check_out_dir, nonneg_int, set_threads
from metacurr.cli.tracking_args import add_tracking_args, parse_tags, sync_hint
from metacurr.errors import ConfigError


def register(sub) -> None:
    p = sub.add_parser("train", help="run one inner training with a controller")
    p.add_argument("--task", help="task family (default mnist1d; see `metacurr list`)")
    p.add_argument("--arch", help="model architecture (default mlp)")
    p.add_argument("--controller", help="controller name, policy:PATH or policy:default (default heuristic)")
    p.add_argument("--seed", type=nonneg_int, help="seed (default 0)")
    p.add_argument("--out", required=True, help="output folder")
    add_budget_args(p)
    p.add_argument("--config", help="YAML config (task:, controller:, controller_kwargs:, monitor:)")
    p.add_argument("--device", help="torch device (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line (full precision)")
    add_threads_arg(p)
    add_tracking_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from metacurr.config import load_yaml, to_dict
    from metacurr.run import resolve_config, run_episode, write_run
    from metacurr.tracking import make_tracker, run_name

    data = load_yaml(args.config) if args.config else {}
    cfg = resolve_config(
        args.task,
        config=data,
        arch=args.arch,
        seed=args.seed,
        control_steps=args.control_steps,
        inner_steps=args.inner_steps,
        controller=args.controller,
        device=args.device,
    )
    out = check_out_dir(args.out)
    from metacurr.controllers import make_controller

    ctrl = make_controller(cfg.controller, **cfg.controller_kwargs)  # loads policy bundles: errors before work
    try:  # e.g. a policy with fewer stage slots than the task has stages
        ctrl.check_stages(cfg.task.n_stages)
    except ConfigError as e:
        raise ConfigError(f"controller {cfg.controller!r} cannot run task {cfg.task.family!r} "
                          f"with {cfg.task.n_stages} stages: {e}") from None
    from metacurr.tasks import build_curriculum

    # Build the data now (cached: the run reuses it): a bad difficulty value fails before --out exists.
    build_curriculum(cfg.task.family, cfg.task.n_stages, cfg.task.seed, cfg.task.params)
    set_threads(args.threads)
    bar = tqdm(total=cfg.task.control_steps, desc=f"{cfg.task.family}/{cfg.task.arch} {cfg.controller}",
               disable=args.no_progress, file=sys.stderr, leave=False)

    def on_step(t: int, row: dict) -> None:
        bar.update(1)
        bar.set_postfix(val_acc=f"{row['inner/val_acc']:.3f}")

    tracker = make_tracker(
        args.wandb, out,
        name=run_name(cfg.task.family, cfg.controller, cfg.task.seed),
        group=args.group,
        tags=[cfg.controller, cfg.task.family, cfg.task.arch, *parse_tags(args.tags)],
        config=to_dict(cfg),
    )
    ok = False
    try:
        summary, rows = run_episode(cfg, ctrl, tracker=tracker, on_step=on_step)
        write_run(out, cfg, summary, rows)
        ok = True
    finally:
        bar.close()
        tracker.finish(exit_code=0 if ok else 1)  # a crashed run is marked failed in W&B and tracking.json
    from metacurr.cli.summary import human_summary, json_summary

    print(json_summary(summary, out) if args.json else "\n".join(human_summary(summary, out)))
    hint = sync_hint(tracker.wandb_info)
    if hint:
        print(hint)
    return 0
