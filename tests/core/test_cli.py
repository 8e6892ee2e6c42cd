"""CLI smoke per task family (tiny budgets) and bad input: one line, exit 2, nothing written."""

import json

import pytest

from metacurr.cli import main

FAMILY_ARCH = [("mnist1d", "mlp"), ("mnist1d", "cnn"), ("digits", "mlp"), ("sequence", "gru"), ("sequence", "transformer")]


@pytest.mark.parametrize("task,arch", FAMILY_ARCH)
def test_train_smoke_every_family(task, arch, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--task", task, "--arch", arch, "--controller", "heuristic", "--seed", "3", "--out", str(out),
               "--control-steps", "2", "--inner-steps", "2", "--no-progress"])
    assert rc == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["task"] == task and s["arch"] == arch and len(s["per_stage_acc"]) == 3
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "mnist1d" in out and "heuristic" in out and "transformer" in out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--task", "nope"], "unknown task 'nope'"),
        (["--arch", "nope"], "unknown arch 'nope'"),
        (["--controller", "nope"], "unknown controller 'nope'"),
        (["--task", "sequence", "--arch", "cnn"], "incompatible"),
        (["--control-steps", "-3"], "positive integer"),
        (["--inner-steps", "0"], "positive integer"),
        (["--seed", "x"], "integer"),
        (["--controller", "policy:/does/not/exist"], "policy bundle not found"),
    ],
)
def test_bad_input_exit_2_one_line_nothing_written(args, fragment, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) if fragment in ("positive integer", "integer") else _nullcontext() as exc:
        rc = main(["train", *args, "--out", str(out)])
    rc = exc.value.code if exc is not None and hasattr(exc, "value") else rc
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def test_bad_yaml_config(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("task:\n  family: mnist1d\n  bogus: 3\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "unknown key config.task.bogus" in capsys.readouterr().err
    cfg.write_text("task: {family: [\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "o")]) == 2
    assert "malformed YAML" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
