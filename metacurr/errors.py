"""Exceptions shared across metacurr.

`ConfigError` is the one exception that means "the user asked for something invalid": the CLI turns
it into a one-line message and exit code 2, before any work is done or any file is written.
"""

from __future__ import annotations


class MetacurrError(Exception):
    """Base class of metacurr's own errors."""


class ConfigError(MetacurrError, ValueError):
    """Invalid user input: unknown name, wrong type, bad budget, malformed file.

    The message is one line naming the problem and, where there is a fixed set, the valid choices.
    """


def choices_error(what: str, value: object, valid: list[str] | tuple[str, ...]) -> ConfigError:
    """Build the standard "unknown X 'v'; valid choices: a, b, c" error."""
    return ConfigError(f"unknown {what} {value!r}; valid choices: {', '.join(sorted(valid))}")
