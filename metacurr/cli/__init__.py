"""The ``metacurr`` command line. A thin layer: parse, validate, call the library, print.

Each subcommand lives in its own module exposing ``register(subparsers)``; bad input anywhere becomes
one line on stderr and exit code 2, before any file is written.
"""

from __future__ import annotations

import argparse
import errno
import gc
import importlib
import logging
import os
import re
import sys
import threading

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


#: errno values of a write fault the command reports itself (one line), so the trackers' own warnings
#: and background writer threads (TensorBoard's) stay quiet about them.
_WRITE_FAULTS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM)


def _write_fault(e: object) -> bool:
    return isinstance(e, OSError) and e.errno in _WRITE_FAULTS


class _QuietWriteFaults(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(_write_fault(a) for a in (record.args if isinstance(record.args, tuple) else ()))


def _thread_hook(previous):
    def hook(args) -> None:
        if not _write_fault(args.exc_value):
            previous(args)
    return hook


def _before_exit() -> None:
    # The interpreter's last garbage collections walk every object torch and the rest created: about
    # 0.3 s of a short `train` (benchmarks/startup.py). Frozen objects are skipped; every file a command
    # writes is closed by the command itself.
    gc.freeze()


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (None: ``sys.argv[1:]``, the program's own run) and return its exit code."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    parser = build_parser()
    args = parser.parse_args(argv)
    quiet = _QuietWriteFaults()
    # a logger's filter does not see its children's records: each tracking module's logger gets it
    tracking_logs = [logging.getLogger(f"metacurr.tracking.{m}") for m in ("composite", "local", "tensorboard")]
    for lg in tracking_logs:
        lg.addFilter(quiet)
    previous_hook = threading.excepthook
    threading.excepthook = _thread_hook(previous_hook)
    guard = None
    try:
        out = getattr(args, "out", None)
        if out:  # validated by each command before it writes; a failed write removes what the run added
            from metacurr.io import OutputFolder

            guard = OutputFolder(out)
        return int(args.func(args) or 0)
    except ConfigError as e:
        print(f"metacurr {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a read-only file system: one line, nothing half-written
        from metacurr.validation import write_error

        if guard is not None:
            guard.rollback()
        print(f"metacurr {args.command}: error: {write_error(e, getattr(args, 'out', None))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"metacurr {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        for lg in tracking_logs:
            lg.removeFilter(quiet)
        threading.excepthook = previous_hook
        if argv is None:  # the process exits next (`metacurr`, `python -m metacurr.cli`), not a caller's call
            _before_exit()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
