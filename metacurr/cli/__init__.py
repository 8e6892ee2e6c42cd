"""The ``metacurr`` command line. A thin layer: parse, validate, call the library, print.

Each subcommand lives in its own module exposing ``register(subparsers)``; bad input anywhere becomes
one line on stderr and exit code 2, before any file is written.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from metacurr.errors import ConfigError

#: Subcommand modules, in help order.
COMMANDS = (
    "metacurr.cli.list_cmd",
    "metacurr.cli.train_cmd",
    "metacurr.cli.evaluate_cmd",
    "metacurr.cli.train_agent_cmd",
    "metacurr.cli.sweep_cmd",
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {_choices(message)} (see --help)\n")


def _choices(message: str) -> str:
    """argparse's "invalid choice: 'x' (choose from 'a', 'b')" in metacurr's wording ("valid choices: a, b")."""
    m = re.search(r" \(choose from (.*)\)$", message)
    if m is None:
        return message
    valid = ", ".join(v.strip().strip("'\"") for v in m.group(1).split(","))
    return f"{message[: m.start()]}; valid choices: {valid}"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="metacurr", description="Reinforcement learning that rebalances a curriculum.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser, metavar="COMMAND")
    for mod in COMMANDS:
        try:
            m = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name == mod:  # a subcommand not built yet
                continue
            raise
        m.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"metacurr {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"metacurr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
