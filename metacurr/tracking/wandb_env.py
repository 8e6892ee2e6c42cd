"""Where W&B stands on this machine: which mode to run in, whether it can reach its server.

Nothing here talks to the network except `require_online`'s TCP probe, which has a short timeout:
tracking must never block a run, and a sweep command must fail in seconds, not hang, when offline.
"""

from __future__ import annotations

import configparser
import netrc
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from metacurr.errors import ConfigError, choices_error

#: Values of ``--wandb`` / ``make_tracker(mode=...)``. ``auto`` = online when an API key is configured.
WANDB_MODES = ("auto", "online", "offline", "disabled")
#: Seconds `wandb.init` may spend reaching the server before the run falls back to offline.
ONLINE_INIT_TIMEOUT_S = 20.0
#: Seconds of the TCP reachability probe before an online-only command gives up.
PROBE_TIMEOUT_S = 5.0
#: Seconds an online-only W&B API call (create a sweep, fetch an artifact) may take.
API_TIMEOUT_S = 120.0
_DEFAULT_BASE_URL = "https://api.wandb.ai"

T = TypeVar("T")


def server_url() -> str:
    """The W&B server this process would talk to: ``WANDB_BASE_URL``, else ``base_url`` in W&B's settings
    file (``$WANDB_CONFIG_DIR/settings`` or ``~/.config/wandb/settings``), else the public server.

    Read without importing wandb (a second or more): deciding the mode must stay cheap.
    """
    url = os.environ.get("WANDB_BASE_URL")
    if url:
        return url.rstrip("/")
    folder = os.environ.get("WANDB_CONFIG_DIR") or str(Path.home() / ".config" / "wandb")
    parser = configparser.ConfigParser()
    try:
        parser.read(Path(folder) / "settings")
        url = parser.get("default", "base_url", fallback="")
    except (OSError, configparser.Error):  # an unreadable settings file must not decide tracking
        url = ""
    return (url or _DEFAULT_BASE_URL).rstrip("/")


def has_api_key() -> bool:
    """Whether a W&B API key is configured (``WANDB_API_KEY`` or a netrc entry for the server).

    Read from the environment and the netrc file only; the key is never validated online here.
    """
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = os.environ.get("NETRC") or str(Path.home() / (".netrc" if os.name != "nt" else "_netrc"))
    host = urlsplit(server_url()).hostname or ""
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def resolve_mode(mode: str) -> str:
    """Map a requested mode to the one W&B will run in: ``online``, ``offline`` or ``disabled``.

    ``auto`` honours ``WANDB_MODE`` (offline / disabled / online) and ``WANDB_DISABLED`` when set,
    otherwise it is online when an API key is configured and offline when not (a W&B run in the run
    folder, to upload later with ``wandb sync``). ``off`` is an alias of ``disabled``.

    Raises:
        ConfigError: ``mode`` is not one of `WANDB_MODES`.
    """
    if mode == "off":
        return "disabled"
    if mode not in WANDB_MODES:
        raise choices_error("W&B mode", mode, WANDB_MODES)
    if mode != "auto":
        return mode
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("offline", "dryrun"):
        return "offline"
    if env == "disabled" or os.environ.get("WANDB_DISABLED", "").strip().lower() in ("true", "1", "yes"):
        return "disabled"
    if env in ("online", "run"):
        return "online"
    return "online" if has_api_key() else "offline"


def require_online(action: str) -> None:
    """Fail fast, with one line, when ``action`` (which needs the W&B server) cannot work here.

    Checks ``WANDB_MODE``, the API key and a TCP connection to the server, in that order.

    Raises:
        ConfigError: offline mode, not logged in, or the server is unreachable.
    """
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env in ("offline", "dryrun", "disabled"):
        raise ConfigError(
            f"{action} needs the W&B server but WANDB_MODE={env}; unset WANDB_MODE and run `wandb login`"
        )
    if not has_api_key():
        raise ConfigError(f"{action} needs a W&B login: run `wandb login` (or set WANDB_API_KEY)")
    url = server_url()
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (80 if parts.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as e:
        raise ConfigError(f"{action} cannot reach the W&B server {url} ({e.strerror or e}); check the network") from None


def call_with_timeout(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run ``fn`` in a daemon thread; a W&B API call that retries forever must not hang the CLI.

    Raises:
        ConfigError: ``fn`` raised (its message, on one line) or did not return within ``timeout``.
    """
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # re-raised below as one line
            box["error"] = e

    th = threading.Thread(target=target, name=f"metacurr-{what}", daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        raise ConfigError(f"{what}: no answer from the W&B server after {timeout:.0f} s")
    if "error" in box:
        raise ConfigError(f"{what}: {one_line(box['error'])}") from None
    return box["value"]


def one_line(err: BaseException | str) -> str:
    """The first line of an exception's message (W&B errors span several)."""
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def quiet_wandb() -> None:
    """Make wandb log to its debug files instead of the terminal (library code never prints)."""
    # wandb is imported only when W&B is used: its import takes about a second
    import wandb

    wandb.setup(settings=wandb.Settings(silent=True))
