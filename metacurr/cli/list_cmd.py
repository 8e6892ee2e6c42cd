"""``metacurr list``: task families (with their architectures and parameters), archs, controllers."""

from __future__ import annotations

import argparse

from metacurr.cli.catalog import constant


def register(sub) -> None:
    p = sub.add_parser("list", help="list tasks, architectures and controllers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Read from the modules' literals: listing names does not import torch (see metacurr/cli/catalog.py).
    families = constant("metacurr.tasks", "_FAMILY_MODULES")
    print("tasks:")
    for name, module in families.items():
        params = ", ".join(f"{k}={v}" for k, v in constant(module, "DEFAULTS").items())
        print(f"  {name:<10} archs: {', '.join(constant(module, 'ARCHS')):<28} params: {params}")
    print(f"archs: {', '.join(constant('metacurr.models', 'ARCHS'))}")
    controllers = ", ".join(constant("metacurr.controllers", "REGISTRY"))
    print(f"controllers: {controllers}, policy:PATH, policy:default, wandb:ENTITY/PROJECT/NAME:VERSION")
    return 0
