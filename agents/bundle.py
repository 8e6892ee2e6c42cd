"""Policy bundles: a saved PPO policy that can act as a controller anywhere.

Layout of ``DIR/policy/``::

    manifest.json     format version, library versions, observation layout (feature names), action
                      mapping, supported stage counts, policy architecture, training config, and a
                      SHA-256 of every other file
    policy.pt         the actor-critic's state_dict (loaded with torch.load(weights_only=True))
    normalizer.npz    observation-normaliser statistics (mean, var, clip, epsilon)
    model.zip         the full SB3 model, for continued training / inspection (not read for inference)

Trust model: inference reads only ``policy.pt`` (weights only: no code runs on load), ``normalizer.npz``
(``allow_pickle=False``) and ``manifest.json``, after checking their checksums against the manifest.
``model.zip`` is an SB3 archive that can hold pickled objects: load it (``PPO.load``) only from sources
you trust, exactly as you would run their code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from metacurr.errors import ConfigError
from metacurr.io import dumps

FORMAT_VERSION = 1
INFERENCE_FILES = ("policy.pt", "normalizer.npz")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def versions() -> dict:
    import gymnasium
    import stable_baselines3
    import torch

    import metacurr

    return {
        "metacurr": metacurr.__version__,
        "torch": torch.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "gymnasium": gymnasium.__version__,
        "numpy": np.__version__,
    }


def save_bundle(
    path: str | Path,
    *,
    policy_state: dict,
    obs_mean: np.ndarray,
    obs_var: np.ndarray,
    clip_obs: float,
    epsilon: float,
    manifest: dict,
    model_zip: str | Path | None = None,
) -> Path:
    """Write a bundle atomically: everything goes to a temp folder that replaces ``path`` in one rename."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        torch.save(policy_state, tmp / "policy.pt")
        np.savez(tmp / "normalizer.npz", mean=obs_mean, var=obs_var, clip=np.float64(clip_obs), epsilon=np.float64(epsilon))
        if model_zip is not None:
            shutil.copyfile(model_zip, tmp / "model.zip")
        files = {f.name: sha256(f) for f in sorted(tmp.iterdir())}
        man = {"format_version": FORMAT_VERSION, "versions": versions(), **manifest, "files": files}
        (tmp / "manifest.json").write_text(dumps(man, indent=2, sort_keys=True) + "\n")
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_manifest(path: str | Path) -> dict:
    """Read and check a bundle's manifest and file checksums; ConfigError on any problem."""
    path = Path(path)
    man_path = path / "manifest.json"
    if not path.is_dir() or not man_path.is_file():
        raise ConfigError(f"policy bundle not found: {path} (expected a folder with manifest.json)")
    try:
        man = json.loads(man_path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"policy bundle {path}: manifest.json is not valid JSON ({e.msg})") from None
    if man.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"policy bundle {path}: format_version {man.get('format_version')!r}, this metacurr reads {FORMAT_VERSION}")
    for name in INFERENCE_FILES:
        f = path / name
        want = man.get("files", {}).get(name)
        if not f.is_file() or want is None:
            raise ConfigError(f"policy bundle {path}: missing {name}")
        if sha256(f) != want:
            raise ConfigError(f"policy bundle {path}: checksum mismatch for {name} (corrupted or modified)")
    return man


def load_bundle(path: str | Path) -> tuple[dict, dict, dict]:
    """Return (manifest, policy state_dict, normaliser stats) after checking the manifest."""
    import torch

    path = Path(path)
    man = read_manifest(path)
    state = torch.load(path / "policy.pt", map_location="cpu", weights_only=True)
    with np.load(path / "normalizer.npz", allow_pickle=False) as z:
        norm = {k: z[k] for k in z.files}
    return man, state, norm
