"""Policy bundles: a saved PPO policy that can act as a controller anywhere.

Layout of ``DIR/policy/``::

    manifest.json     format version, library versions, observation layout (feature names), action
                      mapping, supported stage counts, policy architecture, training config, a
                      SHA-256 of every other file, and ``manifest_sha256``: a SHA-256 of the manifest
                      itself (its canonical JSON without that key)
    policy.pt         the actor-critic's state_dict (loaded with torch.load(weights_only=True))
    normalizer.npz    observation-normaliser statistics: per observation entry (mean, var, clip, epsilon)
                      for the ``mlp`` policy; per feature, shared by the stages, for the ``equivariant``
                      policy (`metacurr.agents.equivariant_policy.NORMALIZER_STATE_KEYS`, clip, epsilon)
    model.zip         the full SB3 model, for continued training / inspection (not read for inference)

Format version 2: the manifest names its ``policy_class`` (``mlp`` or ``equivariant``) and carries its
own checksum. Format 1 bundles (no manifest checksum) are refused with one line: reading them would let
an edited manifest pass by claiming the old format.

Trust model: inference reads only ``policy.pt`` (weights only: no code runs on load), ``normalizer.npz``
(``allow_pickle=False``) and ``manifest.json``, after checking the manifest's own checksum and every
listed file's checksum. The checksums detect damage and edits; they are not a signature (whoever edits a
bundle can recompute them).
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

import gymnasium
import numpy as np
import stable_baselines3
import torch
from stable_baselines3.common.save_util import load_from_zip_file

import metacurr
from metacurr.errors import ConfigError
from metacurr.io import DIR_MODE, atomic_write_bytes, dumps, fsync_dir

FORMAT_VERSION = 2
#: The manifest key holding the manifest's own checksum.
MANIFEST_SUM = "manifest_sha256"
INFERENCE_FILES = ("policy.pt", "normalizer.npz")
NORMALIZER_KEYS = ("mean", "var", "clip", "epsilon")
#: Policy classes a bundle may hold, and the normaliser keys each needs.
POLICY_CLASSES = {
    "mlp": NORMALIZER_KEYS,
    "equivariant": ("global_mean", "global_var", "count", "stage_mean", "stage_var", "stage_count",
                    "score_mean", "score_var", "score_count", "clip", "epsilon"),
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_digest(man: dict) -> str:
    """SHA-256 of a manifest's canonical JSON (sorted keys, no whitespace), ``manifest_sha256`` left out."""
    body = {k: v for k, v in man.items() if k != MANIFEST_SUM}
    return hashlib.sha256(dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def versions() -> dict:
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
    manifest: dict,
    obs_mean: np.ndarray | None = None,
    obs_var: np.ndarray | None = None,
    clip_obs: float | None = None,
    epsilon: float | None = None,
    normalizer: dict | None = None,
    model_zip: str | Path | None = None,
) -> Path:
    """Write a bundle atomically: everything goes to a temp folder (fsynced) that then replaces ``path``.

    The normaliser is either ``normalizer`` (a dict of arrays, as the policy class needs) or the four
    VecNormalize values ``obs_mean, obs_var, clip_obs, epsilon``.

    A folder cannot be renamed over a non-empty one, so an existing bundle is first renamed aside
    (``.NAME.old-PID``), the new one renamed in, and the old one removed. If the swap fails, the old
    bundle is put back; after a hard kill between the two renames `read_manifest` names the folder
    holding the previous bundle.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    old = None
    try:
        os.chmod(tmp, DIR_MODE)  # mkdtemp makes 0700 folders; a bundle is meant to be shared
        torch.save(policy_state, tmp / "policy.pt")
        if normalizer is None:
            normalizer = {"mean": obs_mean, "var": obs_var, "clip": np.float64(clip_obs), "epsilon": np.float64(epsilon)}
        np.savez(tmp / "normalizer.npz", **normalizer)
        if model_zip is not None:
            shutil.copyfile(model_zip, tmp / "model.zip")
        files = {f.name: sha256(f) for f in sorted(tmp.iterdir())}
        man = {"format_version": FORMAT_VERSION, "versions": versions(), **manifest, "files": files}
        man[MANIFEST_SUM] = manifest_digest(json.loads(dumps(man)))  # the digest of what a reader parses
        (tmp / "manifest.json").write_text(dumps(man, indent=2, sort_keys=True) + "\n")
        for f in tmp.iterdir():
            _fsync_file(f)
        fsync_dir(tmp)
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not path.exists():  # the swap failed half-way: put the previous bundle back
            os.replace(old, path)
        raise
    fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(path: str | Path) -> dict:
    """Read and check a bundle's manifest and file checksums; ConfigError on any problem."""
    path = Path(path)
    man_path = path / "manifest.json"
    if not path.is_dir() or not man_path.is_file():
        aside = sorted(path.parent.glob(f".{path.name}.old-*")) if path.parent.is_dir() else []
        hint = f"; a save interrupted mid-swap left the previous bundle in {aside[0]} (rename it to {path.name})" if aside else ""
        raise ConfigError(f"policy bundle not found: {path} (expected a folder with manifest.json){hint}")
    try:
        man = json.loads(man_path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"policy bundle {path}: manifest.json is not valid JSON ({e.msg})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"policy bundle {path}: cannot read manifest.json ({type(e).__name__})") from None
    if not isinstance(man, dict) or not isinstance(man.get("files", {}), dict):
        raise ConfigError(f"policy bundle {path}: manifest.json is not a bundle manifest (expected a JSON object with files)")
    if man.get("format_version") != FORMAT_VERSION:
        why = " (format 1 carries no manifest checksum)" if man.get("format_version") == 1 else ""
        raise ConfigError(f"policy bundle {path}: format_version {man.get('format_version')!r}, this metacurr reads "
                          f"{FORMAT_VERSION}{why}; retrain it or load it with the metacurr that wrote it")
    if man.get(MANIFEST_SUM) != manifest_digest(man):
        raise ConfigError(f"policy bundle {path}: checksum mismatch for manifest.json (corrupted or modified)")
    if policy_class(man) not in POLICY_CLASSES:
        raise ConfigError(f"policy bundle {path}: unknown policy_class {man.get('policy_class')!r}; valid choices: {', '.join(POLICY_CLASSES)}")
    files = man.get("files", {})
    for name in sorted({*INFERENCE_FILES, *files}):
        f = path / name
        want = files.get(name)
        if not f.is_file() or want is None:
            raise ConfigError(f"policy bundle {path}: missing {name}")
        if sha256(f) != want:
            raise ConfigError(f"policy bundle {path}: checksum mismatch for {name} (corrupted or modified)")
    return man


def load_bundle(path: str | Path) -> tuple[dict, dict, dict]:
    """Return (manifest, policy state_dict, normaliser stats) after checking the manifest."""
    path = Path(path)
    man = read_manifest(path)
    # The checksums match the manifest, but the manifest itself may have been regenerated over damaged
    # or foreign files: any failure to read them is a bad bundle (one line), never a traceback.
    try:
        state = torch.load(path / "policy.pt", map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError, ... depending on the damage
        # (torch's own message advises weights_only=False: never for a bundle; it would run pickled code)
        raise ConfigError(f"policy bundle {path}: cannot read policy.pt as a weights-only state_dict "
                          f"({type(e).__name__}); the file is damaged or not from a metacurr bundle") from None
    if not isinstance(state, dict):
        raise ConfigError(f"policy bundle {path}: policy.pt does not hold a state_dict")
    try:
        with np.load(path / "normalizer.npz", allow_pickle=False) as z:
            norm = {k: z[k] for k in z.files}
    except Exception as e:  # BadZipFile, ValueError (pickled content), OSError
        raise ConfigError(f"policy bundle {path}: cannot read normalizer.npz ({_first_line(e)})") from None
    missing = [k for k in POLICY_CLASSES[policy_class(man)] if k not in norm]
    if missing:
        raise ConfigError(f"policy bundle {path}: normalizer.npz lacks {', '.join(missing)}")
    return man, state, norm


def derive_bundle(src: str | Path, dst: str | Path, policy_kwargs: dict, note: str = "") -> Path:
    """Copy a bundle with some ``policy_kwargs`` changed (e.g. ``{"fallback": "shrink"}``): the same
    weights and normaliser, another inference setting. ``policy.pt`` and ``normalizer.npz`` are copied
    unchanged; ``model.zip`` is re-saved with the changed kwargs (same parameters and buffers), so a plain
    ``PPO.load`` of the derived bundle acts as the derived bundle does. The manifest records ``derived_from``.
    A ``dst`` already derived from the same weights with the same kwargs is left as it is (so its
    manifest checksum, the identity evaluations resume by, stays the same).
    """
    src, dst = Path(src), Path(dst)
    man = read_manifest(src)
    kwargs = json.loads(dumps({**dict(man.get("policy_kwargs") or {}), **policy_kwargs}))
    if _derived_alike(dst, man, kwargs):
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.tmp-"))
    try:
        os.chmod(tmp, DIR_MODE)
        files = dict(man.get("files") or {})
        for f in sorted(src.iterdir()):
            if f.name == "model.zip":
                _resave_model(f, tmp / f.name, policy_kwargs)
                files[f.name] = sha256(tmp / f.name)
            elif f.name != "manifest.json" and f.is_file():
                atomic_write_bytes(tmp / f.name, f.read_bytes())
        man = {**man, "files": files, "policy_kwargs": kwargs,
               "derived_from": {"bundle": str(src), "changed": sorted(policy_kwargs), "note": note,
                                "model_zip": "resaved with policy_kwargs"}}
        man[MANIFEST_SUM] = manifest_digest(json.loads(dumps(man)))  # a new manifest: signed anew
        (tmp / "manifest.json").write_text(dumps(man, indent=2, sort_keys=True) + "\n")
        if dst.exists():
            shutil.rmtree(dst)
        os.replace(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dst


def _derived_alike(dst: Path, src_manifest: dict, kwargs: dict) -> bool:
    """Whether ``dst`` is an intact bundle derived from ``src_manifest``'s weights with ``kwargs``."""
    if not (dst / "manifest.json").is_file():
        return False
    try:
        old = read_manifest(dst)  # checks the manifest's checksum and every file's
    except ConfigError:
        return False
    src_files, old_files = src_manifest.get("files") or {}, old.get("files") or {}
    return (old.get("policy_kwargs") == kwargs and all(old_files.get(f) == src_files.get(f) for f in INFERENCE_FILES)
            and ("model.zip" in old_files) == ("model.zip" in src_files)
            and (old.get("derived_from") or {}).get("model_zip") == "resaved with policy_kwargs")


def _resave_model(src: Path, dst: Path, policy_kwargs: dict) -> None:
    """``src`` (an SB3 PPO archive) saved to ``dst`` with ``policy_kwargs`` merged into its own."""
    data, _, _ = load_from_zip_file(src, device="cpu")  # the archive's own kwargs, without building a model
    kwargs = {**dict(data.get("policy_kwargs") or {}), **policy_kwargs}
    model = stable_baselines3.PPO.load(src, device="cpu", custom_objects={"policy_kwargs": kwargs})
    model.save(dst)


def policy_class(manifest: dict) -> str:
    """The policy class a manifest records (``mlp`` when it names none)."""
    return manifest.get("policy_class", "mlp")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:200]}" if text else type(e).__name__
