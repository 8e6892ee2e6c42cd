"""Loading a policy bundle runs no code from it (README, "Policy bundles and trust").

A hostile bundle is built from the shipped one: a file replaced by a pickle whose unpickling would call
``os.mkdir(MARKER)``, and the manifest's checksums regenerated to match (checksums prove integrity, not
trust). Loading must refuse it with one ConfigError, and the marker folder must not exist afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from metacurr.agents.bundle import (
    MANIFEST_SUM,
    load_bundle,
    manifest_digest,
    read_manifest,
    save_bundle,
    sha256,
)
from metacurr.agents.policy_controller import default_bundle_path
from metacurr.controllers import make_controller
from metacurr.errors import ConfigError


class Payload:
    """Unpickling this calls os.mkdir(path): any code execution on load leaves the folder behind."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def _hostile_copy(tmp_path: Path, name: str, write) -> tuple[Path, Path]:
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), bundle)
    marker = tmp_path / "code-ran"
    write(bundle / name, marker)
    man = json.loads((bundle / "manifest.json").read_text())
    man["files"][name] = sha256(bundle / name)
    man[MANIFEST_SUM] = manifest_digest(man)  # re-signed: the manifest's own checksum matches too
    (bundle / "manifest.json").write_text(json.dumps(man))
    return bundle, marker


def _pickled_policy(path: Path, marker: Path) -> None:
    state = torch.load(path, weights_only=True)
    state["payload"] = Payload(marker)
    torch.save(state, path)


def _pickled_normalizer(path: Path, marker: Path) -> None:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["mean"] = np.array([Payload(marker)], dtype=object)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize(("name", "write", "message"), [
    ("policy.pt", _pickled_policy, "cannot read policy.pt as a weights-only state_dict"),
    ("normalizer.npz", _pickled_normalizer, "cannot read normalizer.npz"),
])
def test_a_pickle_payload_is_refused_and_never_runs(tmp_path, name, write, message):
    bundle, marker = _hostile_copy(tmp_path, name, write)
    assert read_manifest(bundle)["files"][name] == sha256(bundle / name)  # the checksums do match
    with pytest.raises(ConfigError, match=message):
        load_bundle(bundle)
    assert not marker.exists(), "loading the bundle ran code from it"
    with pytest.raises(ConfigError, match=message):
        make_controller(f"policy:{bundle}")
    assert not marker.exists(), "loading the bundle ran code from it"


def test_a_policy_file_that_is_not_a_state_dict_is_refused(tmp_path):
    bundle, _ = _hostile_copy(tmp_path, "policy.pt", lambda p, _m: torch.save([torch.zeros(2)], p))
    with pytest.raises(ConfigError, match="does not hold a state_dict"):
        load_bundle(bundle)


def test_a_normalizer_without_its_keys_is_refused(tmp_path):
    bundle, _ = _hostile_copy(tmp_path, "normalizer.npz", lambda p, _m: np.savez(open(p, "wb"), mean=np.zeros(3)))
    with pytest.raises(ConfigError, match="normalizer.npz lacks global_mean, global_var, count, stage_mean"):  # equivariant keys
        load_bundle(bundle)


def test_save_and_load_round_trip(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.tensor([0.5, -1.5])}
    mean, var = np.array([0.1, 0.2]), np.array([1.5, 2.5])
    out = save_bundle(tmp_path / "p", policy_state=state, obs_mean=mean, obs_var=var, clip_obs=10.0, epsilon=1e-8,
                      manifest={"observation": {"max_stages": 2}})
    assert out == tmp_path / "p" and sorted(f.name for f in out.iterdir()) == ["manifest.json", "normalizer.npz", "policy.pt"]
    man, loaded, norm = load_bundle(out)
    assert man["format_version"] == 2 and man["observation"] == {"max_stages": 2}
    assert set(man["versions"]) == {"metacurr", "torch", "stable_baselines3", "gymnasium", "numpy"}
    assert man["files"] == {n: sha256(out / n) for n in ("normalizer.npz", "policy.pt")}
    assert set(loaded) == {"w", "b"} and all(torch.equal(loaded[k], state[k]) for k in state)
    assert np.array_equal(norm["mean"], mean) and np.array_equal(norm["var"], var)
    assert float(norm["clip"]) == 10.0 and float(norm["epsilon"]) == 1e-8
    assert oct(out.stat().st_mode & 0o777) != oct(0o700)  # shared like any folder, not mkdtemp's 0700
    # saving again replaces the bundle in place and leaves nothing aside
    save_bundle(out, policy_state={"w": torch.ones(1)}, obs_mean=mean, obs_var=var, clip_obs=5.0, epsilon=1e-8, manifest={})
    assert set(load_bundle(out)[1]) == {"w"} and sorted(p.name for p in tmp_path.iterdir()) == ["p"]
    zip_src = tmp_path / "model-src.zip"
    zip_src.write_bytes(b"PK\x05\x06" + bytes(18))
    nested = save_bundle(tmp_path / "a" / "b" / "p", policy_state=state, obs_mean=mean, obs_var=var, clip_obs=1.0,
                         epsilon=1e-8, manifest={}, model_zip=zip_src)  # missing parent folders are created
    zip_src.unlink()
    man, _, norm = load_bundle(nested)
    assert norm["clip"] == 1.0 and (nested / "model.zip").read_bytes() == b"PK\x05\x06" + bytes(18)
    assert man["files"]["model.zip"] == sha256(nested / "model.zip")


def _edit_manifest(bundle: Path, fn) -> None:
    """Edit the manifest and re-sign it, so the edit itself (not the manifest checksum) is what is refused."""
    man = fn(json.loads((bundle / "manifest.json").read_text()))
    man[MANIFEST_SUM] = manifest_digest(man)
    (bundle / "manifest.json").write_text(json.dumps(man))


def _tamper_manifest(bundle: Path) -> None:
    """Change the policy's behaviour (its weight mapping's step bound) without re-signing the manifest."""
    man = json.loads((bundle / "manifest.json").read_text())
    man["mapping"]["max_step"] = 0.5
    (bundle / "manifest.json").write_text(json.dumps(man))


@pytest.mark.parametrize(("damage", "message"), [
    (lambda b: shutil.rmtree(b), "policy bundle not found: .* \\(expected a folder with manifest.json\\)$"),
    (lambda b: (b / "manifest.json").unlink(), "policy bundle not found"),
    (lambda b: (b / "manifest.json").write_text("{not json"), "manifest.json is not valid JSON"),
    (lambda b: (b / "manifest.json").write_bytes(b"\xff\xfe\x00"), r"cannot read manifest.json \(UnicodeDecodeError\)"),
    (lambda b: (b / "manifest.json").write_text("[1, 2]"), "manifest.json is not a bundle manifest"),
    (lambda b: _edit_manifest(b, lambda m: {**m, "files": ["policy.pt"]}), "is not a bundle manifest"),
    (lambda b: _edit_manifest(b, lambda m: {**m, "format_version": 3}), "format_version 3, this metacurr reads 2"),
    (lambda b: _tamper_manifest(b), "checksum mismatch for manifest.json"),
    (lambda b: (b / "policy.pt").unlink(), "missing policy.pt"),
    (lambda b: _edit_manifest(b, lambda m: {**m, "files": {"policy.pt": m["files"]["policy.pt"]}}), "missing normalizer.npz"),
    (lambda b: (b / "normalizer.npz").write_bytes(b"x"), "checksum mismatch for normalizer.npz"),
])
def test_a_damaged_bundle_is_one_config_error(tmp_path, damage, message):
    bundle = tmp_path / "bundle"
    shutil.copytree(default_bundle_path(), bundle)
    assert read_manifest(bundle)["format_version"] == 2
    damage(bundle)
    with pytest.raises(ConfigError, match=message):
        load_bundle(bundle)


def test_a_failed_first_save_raises_its_own_error_and_leaves_nothing(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_bundle(tmp_path / "p", policy_state={}, obs_mean=np.zeros(1), obs_var=np.ones(1), clip_obs=1.0,
                    epsilon=1e-8, manifest={})
    assert list(tmp_path.iterdir()) == []
