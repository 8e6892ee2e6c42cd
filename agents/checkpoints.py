"""Resumable PPO checkpoints: what is written, what a resume reads, what may be deleted.

A checkpoint is ``ckpt_<timesteps>.zip`` (the SB3 model) + ``ckpt_<timesteps>.norm.npz`` (the
VecNormalize statistics); ``latest.json`` names the newest one, ``run-config.json`` holds the training
config that produced them. The rules:

* Write: the zip goes to a temp name and is renamed in, the npz and ``latest.json`` are written
  atomically, so a checkpoint is either complete or absent (a crash leaves at most a temp file).
* Resume: the newest *complete* checkpoint -- both files present and readable -- found by scanning the
  folder. ``latest.json`` is a hint, not the truth: a deleted, truncated or damaged newest checkpoint
  (or a truncated ``latest.json``) falls back to the next complete one, never to a fresh start.
  Damaged files and no complete checkpoint is a one-line refusal, not a silent restart.
* Delete: only checkpoints older than the one just written, keeping the two newest complete ones; a
  checkpoint from further along than the one just written is never removed.
* Config: a resume whose config changes what was trained (`TRAINED_KEYS`) is refused, naming the keys.
"""

from __future__ import annotations

import io
import logging
import os
import re
import zipfile
from pathlib import Path

import numpy as np
import yaml

from metacurr.errors import ConfigError
from metacurr.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

CKPT_RE = re.compile(r"^ckpt_(\d{10})\.zip$")
CONFIG_FILE = "run-config.json"
#: Config sections / keys that define what a checkpoint's weights were trained on (a resume must match
#: them). Everything else (budget, checkpoint / evaluation cadence, threads, how the envs are run, the
#: run's name) may change between a run and its resume.
TRAINED_KEYS = ("env", "ppo", "train.seed", "train.n_envs")
NORM_KEYS = ("mean", "var", "count", "ret_mean", "ret_var", "ret_count")
#: Keys every checkpoint's normaliser file holds (the observation keys only with VecNormalize's norm_obs).
REQUIRED_NORM_KEYS = ("ret_mean", "ret_var", "ret_count")


def save_norm(path: Path, venv) -> None:
    """The VecNormalize statistics of a checkpoint (``.norm.npz``), written atomically.

    Observation statistics only where VecNormalize keeps them (``norm_obs``): the equivariant policy
    normalises its observations itself, and its statistics travel in the model zip."""
    stats = {"ret_mean": venv.ret_rms.mean, "ret_var": venv.ret_rms.var, "ret_count": np.float64(venv.ret_rms.count)}
    if venv.norm_obs:
        rms = venv.obs_rms
        stats.update(mean=rms.mean, var=rms.var, count=np.float64(rms.count))
    buf = io.BytesIO()
    np.savez(buf, **stats)
    atomic_write_bytes(path, buf.getvalue())


def load_norm(path: Path, venv) -> None:
    """Restore `save_norm`'s statistics into ``venv``."""
    with np.load(path, allow_pickle=False) as z:
        if venv.norm_obs:
            venv.obs_rms.mean, venv.obs_rms.var, venv.obs_rms.count = z["mean"], z["var"], float(z["count"])
        venv.ret_rms.mean, venv.ret_rms.var, venv.ret_rms.count = z["ret_mean"], z["ret_var"], float(z["ret_count"])


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):  # an empty mapping holds no setting
            out.update(_flat(v, f"{key}."))
        else:
            out[key] = v
    return out


def trained_diff(old: dict, new: dict) -> list[str]:
    """Dotted keys under `TRAINED_KEYS` whose values differ between two config dicts."""
    a, b = _flat(old), _flat(new)

    def trained(k: str) -> bool:
        return any(k == t or k.startswith(f"{t}.") for t in TRAINED_KEYS)

    return sorted(k for k in set(a) | set(b) if trained(k) and a.get(k) != b.get(k))


def _complete(zip_path: Path) -> bool:
    """Both files present, the zip's central directory and CRCs intact, the npz holding every key."""
    norm = zip_path.with_suffix(".norm.npz")
    if not (zip_path.is_file() and norm.is_file()):
        return False
    try:
        with zipfile.ZipFile(zip_path) as z:
            if z.testzip() is not None or "policy.pth" not in z.namelist():
                return False
        with np.load(norm, allow_pickle=False) as n:
            return all(k in n.files for k in REQUIRED_NORM_KEYS) and (
                all(k in n.files for k in NORM_KEYS) or not any(k in n.files for k in NORM_KEYS[:3]))
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return False


class Checkpointer:
    """The checkpoint folder of one agent run (see the module docstring for the rules)."""

    def __init__(self, folder: Path, keep: int = 2):
        self.folder = Path(folder)
        self.keep = keep

    def _all(self) -> list[tuple[int, Path]]:
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := CKPT_RE.match(p.name))]
        return sorted(found, reverse=True)  # newest first

    def any_files(self) -> bool:
        return bool(self._all()) or (self.folder / "latest.json").exists()

    def latest(self) -> tuple[Path, Path, int] | None:
        """The newest complete checkpoint, or None when the folder holds none at all.

        Raises:
            ConfigError: checkpoint files exist but none is complete (resuming from scratch would
                overwrite them).
        """
        all_ckpts = self._all()
        damaged = []
        for steps, z in all_ckpts:
            if _complete(z):
                if damaged:
                    log.warning("skipped damaged or incomplete checkpoint(s) %s; resuming from %s",
                                ", ".join(damaged), z.name)
                return z, z.with_suffix(".norm.npz"), steps
            damaged.append(z.name)
        if damaged:
            raise ConfigError(f"no complete checkpoint in {self.folder} (damaged or incomplete: {', '.join(damaged)}); "
                              f"move them away to start over, or use another --out")
        return None

    def save(self, model, venv) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        steps = int(model.num_timesteps)
        stem = self.folder / f"ckpt_{steps:010d}"
        tmp_zip = self.folder / f".tmp_{steps}.zip"
        try:
            model.save(tmp_zip)
            os.replace(tmp_zip, stem.with_suffix(".zip"))
        finally:
            tmp_zip.unlink(missing_ok=True)
        save_norm(stem.with_suffix(".norm.npz"), venv)
        atomic_write_json(self.folder / "latest.json", {"timesteps": steps, "zip": stem.with_suffix(".zip").name})
        self._prune(steps)
        return stem

    def _prune(self, steps: int) -> None:
        """Remove checkpoints older than the newest `keep` complete ones at or below ``steps``."""
        kept = 0
        for s, z in self._all():
            if s > steps:
                continue  # from further along (an earlier run of this folder): never ours to delete
            if kept < self.keep and _complete(z):
                kept += 1
                continue
            if kept >= self.keep:
                z.unlink(missing_ok=True)
                z.with_suffix(".norm.npz").unlink(missing_ok=True)

    def set_aside(self) -> Path:
        """A fresh start in a folder holding checkpoints: move them to ``checkpoints.old-N`` (none deleted)."""
        n = 1
        while (dest := self.folder.with_name(f"{self.folder.name}.old-{n}")).exists():
            n += 1
        os.replace(self.folder, dest)
        log.warning("started from scratch: the checkpoints already in %s were moved to %s", self.folder, dest)
        return dest

    def check_config(self, cfg_dict: dict, fallback: Path | None = None) -> None:
        """Refuse a resume whose config changes what the checkpoints were trained on.

        Compared with ``run-config.json`` (written with the first checkpoint), else ``fallback`` (the run
        folder's ``config.yaml``).
        """
        path = self.folder / CONFIG_FILE
        if not path.is_file() and fallback is not None and fallback.is_file():
            path = fallback
        if path.is_file():
            try:
                old = yaml.safe_load(path.read_text())  # JSON is YAML
            except (OSError, ValueError, yaml.YAMLError):
                old = None
            if isinstance(old, dict):
                diff = trained_diff(old, cfg_dict)
                if diff:
                    raise ConfigError(f"--resume with a config that changes what was trained: {', '.join(diff)} "
                                      f"differ from {path}; restore them, or train into another --out")

    def record_config(self, cfg_dict: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.folder / CONFIG_FILE, cfg_dict)


def check_resume(folder: Path, cfg_dict: dict, fallback: Path | None = None) -> tuple[Path, Path, int] | None:
    """Everything a resume refuses, before anything is written: a changed trained config, checkpoint files
    of which none is complete. Returns the checkpoint it will resume from (None: none at all)."""
    ckpt = Checkpointer(folder)
    ckpt.check_config(cfg_dict, fallback)
    return ckpt.latest()
