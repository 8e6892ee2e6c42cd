"""Policy bundles as W&B artifacts: log one from a run, fetch one by ``wandb:ENTITY/PROJECT/NAME:VERSION``."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metacurr.errors import ConfigError
from metacurr.io import atomic_write_text
from metacurr.tracking.wandb_env import API_TIMEOUT_S, call_with_timeout, one_line, require_online

log = logging.getLogger(__name__)

_REF = re.compile(r"^wandb:(?P<entity>[^/:\s]+)/(?P<project>[^/:\s]+)/(?P<name>[^/:\s]+):(?P<version>[^/:\s]+)$")
#: Versions that name one immutable artifact (safe to cache); aliases like ``latest`` move.
_PINNED = re.compile(r"^v\d+$")


def artifact_name(name: str) -> str:
    """A valid W&B artifact name (letters, digits, ``-``, ``_``, ``.``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "artifact"


def log_artifact(path: str | Path | Sequence[str | Path], name: str, type: str = "policy", run: Any = None) -> bool:
    """Log a file or folder (a policy bundle) as a W&B artifact of ``run`` (default: the active run).

    A list of paths makes one artifact of them all: files at its top level, folders under their own
    names (an evaluation report: ``results.csv``, ``report.md``, ``stats.json``, ``plots/``).

    In an offline run the artifact is recorded in the run's files and uploads with ``wandb sync``.
    Never raises: a failure is a logged warning.

    Args:
        path: the bundle folder (or a single file), or a list of files and folders.
        name: artifact name (invalid characters become ``-``).
        type: artifact type.
        run: a ``wandb`` run; None = ``wandb.run``.

    Returns:
        Whether the artifact was logged.
    """
    try:
        # wandb is imported only when W&B is used: its import takes about a second
        import wandb

        run = run if run is not None else wandb.run
        if run is None:
            log.warning("no active W&B run; artifact %s not logged", name)
            return False
        art = wandb.Artifact(artifact_name(name), type=type)
        if isinstance(path, str | Path):
            p = Path(path)
            if p.is_dir():
                art.add_dir(str(p))
            elif p.is_file():
                art.add_file(str(p))
            else:
                log.warning("artifact path %s does not exist; not logged", p)
                return False
        else:
            paths = [Path(q) for q in path if Path(q).exists()]
            if not paths:
                log.warning("none of the artifact paths exist; %s not logged", name)
                return False
            for p in paths:
                if p.is_dir():
                    art.add_dir(str(p), name=p.name)
                else:
                    art.add_file(str(p))
        run.log_artifact(art)
        return True
    except Exception as e:
        log.warning("W&B artifact %s not logged (%s)", name, one_line(e))
        return False


def use_artifact(ref: str, run: Any = None) -> bool:
    """Mark the artifact ``wandb:ENTITY/PROJECT/NAME:VERSION`` as used by ``run`` (lineage in W&B).

    Offline runs cannot resolve an artifact on the server; there (and on any other failure) it is a
    logged warning, never an error.

    Returns:
        Whether the use was recorded.
    """
    try:
        import wandb  # only when W&B is used: its import takes about a second

        parts = parse_ref(ref)
        run = run if run is not None else wandb.run
        if run is None:
            return False
        run.use_artifact(f"{parts['entity']}/{parts['project']}/{parts['name']}:{parts['version']}")
        return True
    except Exception as e:
        log.warning("W&B artifact %s not marked as used (%s)", ref, one_line(e))
        return False


def parse_ref(ref: str) -> dict[str, str]:
    """Split ``wandb:ENTITY/PROJECT/NAME:VERSION``.

    Raises:
        ConfigError: the reference does not have that shape.
    """
    m = _REF.match(ref.strip())
    if m is None:
        raise ConfigError(
            f"bad W&B artifact reference {ref!r}; expected wandb:ENTITY/PROJECT/NAME:VERSION "
            "(e.g. wandb:me/metacurr/agent-policy:v3)"
        )
    return m.groupdict()


def cache_root() -> Path:
    """Where fetched artifacts are kept: ``$METACURR_CACHE/artifacts`` or ``~/.cache/metacurr/artifacts``."""
    base = os.environ.get("METACURR_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"), "metacurr"
    )
    return Path(base) / "artifacts"


def fetch_artifact(ref: str, root: str | Path | None = None) -> Path:
    """Download a W&B artifact and return its local folder.

    A pinned version (``:v3``) already downloaded is reused without touching the network; aliases
    (``:latest``) are resolved online each time.

    Args:
        ref: ``wandb:ENTITY/PROJECT/NAME:VERSION``.
        root: cache folder (default `cache_root`).

    Raises:
        ConfigError: malformed reference, W&B offline / not logged in / unreachable, artifact not
            found -- one line each.
    """
    parts = parse_ref(ref)
    target = Path(root) if root is not None else cache_root()
    target = target / parts["entity"] / parts["project"] / parts["name"] / parts["version"]
    pinned = bool(_PINNED.match(parts["version"]))
    # beside the folder, not in it: a bundle folder must hold only the bundle's own files
    marker = target.with_name(f"{parts['version']}.complete")
    if pinned and marker.is_file() and target.is_dir():
        return target
    require_online(f"fetching {ref}")
    path = f"{parts['entity']}/{parts['project']}/{parts['name']}:{parts['version']}"

    def download() -> str:
        # wandb is imported only when W&B is used: its import takes about a second
        import wandb

        api = wandb.Api(timeout=30)
        return api.artifact(path).download(root=str(target))

    try:
        local = call_with_timeout(download, API_TIMEOUT_S, f"fetching {ref}")
    except ConfigError as e:
        msg = str(e)
        if "not found" in msg.lower() or "does not exist" in msg.lower():
            raise ConfigError(f"W&B artifact {ref} not found (check entity, project, name and version)") from None
        raise
    if pinned:
        atomic_write_text(marker, path + "\n")
    return Path(local)
