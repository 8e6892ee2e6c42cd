"""YAML is read safely (README, "Policy bundles and trust"): a ``!!python/...`` tag in a config, a sweep
spec, an ablation file, a controller parameter or a sweep override is refused or kept as text, and never
constructs the object it names. The payload would create a folder: its absence proves no code ran."""

from __future__ import annotations

import pytest

from metacurr.cli import main
from metacurr.errors import ConfigError
from metacurr.evaluation.specs import load_ablations, parse_controllers
from metacurr.sweeps.overrides import parse_param_tokens


def _tag(marker) -> str:
    return f"!!python/object/apply:os.mkdir [{str(marker)!r}]"


@pytest.mark.parametrize(("command", "text"), [
    ("train", "controller: {tag}\n"),
    ("train", "task: {{family: mnist1d, seed: {tag}}}\n"),
    ("train-agent", "name: {tag}\n"),
])
def test_config_files_with_a_python_tag_are_refused(tmp_path, capsys, command, text):
    marker = tmp_path / "code-ran"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text.format(tag=_tag(marker)))
    out = tmp_path / "out"
    rc = main([command, "--config", str(cfg), "--out", str(out), "--wandb", "disabled", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "malformed YAML" in err[0] and "python/object/apply:os.mkdir" in err[0]
    assert not marker.exists() and not out.exists()


def test_sweep_spec_and_ablation_files_with_a_python_tag_are_refused(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: x\nmethod: {_tag(marker)}\n")
    assert main(["sweep", str(spec), "--local", "--out", str(tmp_path / "out")]) == 2
    assert "malformed YAML" in capsys.readouterr().err
    abl = tmp_path / "a.yaml"
    abl.write_text(f"variants:\n  - {_tag(marker)}\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_ablations(abl)
    assert not marker.exists()


def test_values_inside_arguments_are_read_safely(tmp_path):
    marker = tmp_path / "code-ran"
    with pytest.raises(ConfigError, match="cannot read value"):
        parse_controllers(f"heuristic{{smoothing={_tag(marker)}}}")
    value = parse_param_tokens([f"controller_kwargs.pace={_tag(marker)}"])["controller_kwargs.pace"]
    assert isinstance(value, str) and "python/object" in value  # an unreadable value stays text
    assert not marker.exists()
