"""The built wheel installs into a fresh venv, imports, and puts nothing but `metacurr` on sys.path."""

import json
import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_installs_and_imports_in_clean_venv(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (whl,) = dist.glob("metacurr-*.whl")
    tops = {n.split("/")[0] for n in zipfile.ZipFile(whl).namelist() if not n.startswith("metacurr-")}
    assert tops == {"metacurr"}, tops
    names = zipfile.ZipFile(whl).namelist()
    assert "metacurr/envs/rebalance.py" in names and "metacurr/agents/train.py" in names
    # the shipped policy:default is complete: every file its manifest lists is in the wheel
    listed = json.loads((ROOT / "metacurr" / "pretrained" / "default" / "manifest.json").read_text())["files"]
    assert {"model.zip", "policy.pt", "normalizer.npz"} <= set(listed)
    assert {f"metacurr/pretrained/default/{f}" for f in [*listed, "manifest.json"]} <= set(names)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    target = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            check=True, capture_output=True, text=True).stdout.strip()
    with zipfile.ZipFile(whl) as z:  # a wheel install is an unzip into site-packages
        z.extractall(target)
    # Dependencies (torch, gymnasium, ...) come from this interpreter's site-packages via PYTHONPATH; .pth files
    # there (including the editable install of the repo) are not processed, so `metacurr` must come from the wheel.
    deps = os.pathsep.join(site.getsitepackages())
    code = (
        "import importlib.util, metacurr, metacurr.envs, metacurr.agents, gymnasium as gym;"
        f"assert 'site-packages' in metacurr.__file__ and str(__import__('pathlib').Path(metacurr.__file__)).startswith({str(env_dir)!r}), metacurr.__file__;"
        "assert importlib.util.find_spec('envs') is None and importlib.util.find_spec('agents') is None;"
        "assert 'metacurr/Rebalance-v0' in gym.registry;"
        "print(metacurr.__version__)"
    )
    r = subprocess.run([py, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": deps}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0.1.0"
