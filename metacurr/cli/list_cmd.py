"""``metacurr list``: task families (with their architectures and parameters), archs, controllers."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("list", help="list tasks, architectures and controllers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here, not at the top: `metacurr --help` should not load the registries.
    from metacurr.controllers import list_controllers
    from metacurr.models import ARCHS
    from metacurr.tasks import family_module, list_families

    print("tasks:")
    for name in list_families():
        mod = family_module(name)
        params = ", ".join(f"{k}={v}" for k, v in mod.DEFAULTS.items())
        print(f"  {name:<10} archs: {', '.join(mod.ARCHS):<28} params: {params}")
    print(f"archs: {', '.join(ARCHS)}")
    print(f"controllers: {', '.join(list_controllers())}, policy:PATH, policy:default, wandb:ENTITY/PROJECT/NAME:VERSION")
    return 0
