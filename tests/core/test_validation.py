"""One validation layer: the CLI, the Python API and the env give the same line for the same bad input."""

from __future__ import annotations

import pytest

import metacurr
from metacurr.cli import main
from metacurr.config import load_yaml
from metacurr.errors import ConfigError
from metacurr.validation import parse_controller_ref, split_items

TINY = ["--control-steps", "1", "--inner-steps", "1", "--no-progress", "--wandb", "disabled"]


def _cli_line(argv, capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    prefix = "metacurr train: error: "
    assert line.startswith(prefix)
    return line[len(prefix):]


def _api_line(call) -> str:
    with pytest.raises(ConfigError) as e:
        call()
    return str(e.value)


@pytest.mark.parametrize("case", ["out-is-a-file", "out-empty", "batch-size", "seed-2-70", "controller-kwarg",
                                  "not-utf8"])
def test_cli_and_api_give_the_same_line(case, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(b"task: {family: \xe9}\n")
    out = str(tmp_path / "out")
    cli, api = {
        "out-is-a-file": (["train", "--out", str(afile)], lambda: metacurr.train(out=afile)),
        "out-empty": (["train", "--out", ""], lambda: metacurr.train(out="")),
        "batch-size": (["train", "--config", _yaml(tmp_path, "task: {batch_size: 1000000000000}\n"), "--out", out],
                       lambda: metacurr.train(batch_size=10**12, out=out)),
        "seed-2-70": (["train", "--seed", str(2**70), "--out", out], lambda: metacurr.train(seed=2**70, out=out)),
        "controller-kwarg": (["train", "--controller", "heuristic{alpah=1}", "--out", out],
                             lambda: metacurr.train(controller="heuristic{alpah=1}", out=out)),
        "not-utf8": (["train", "--config", str(cfg), "--out", out], lambda: load_yaml(cfg)),
    }[case]
    assert _cli_line([*cli, *TINY], capsys) == _api_line(api)


def _yaml(tmp_path, text: str) -> str:
    p = tmp_path / "run.yaml"
    p.write_text(text)
    return str(p)


def test_train_accepts_name_with_parameters_like_evaluate(tmp_path):
    s = metacurr.train(controller="heuristic{smoothing=1.0}", control_steps=2, inner_steps=1, out=tmp_path / "o")
    assert s["controller"] == "heuristic"
    conf = load_yaml(tmp_path / "o" / "config.yaml")
    assert conf["controller"] == "heuristic" and conf["controller_kwargs"] == {"smoothing": 1.0}


def test_parse_controller_ref_and_split_items():
    assert parse_controller_ref("heuristic{smoothing=1.0,window=[1,2]}") == ("heuristic", {"smoothing": 1.0,
                                                                                         "window": [1, 2]})
    assert parse_controller_ref("policy:runs/a{b}") == ("policy:runs/a{b}", {})
    assert split_items("a, b", "--x") == ["a", "b"]
    for bad in ("", " ", "a,", ",a", "a,,b"):
        with pytest.raises(ConfigError, match="--x: empty"):
            split_items(bad, "--x")


def test_env_checks_match_the_config_checks():
    from metacurr.envs.rebalance import RebalanceEnv

    env_line = _api_line(lambda: RebalanceEnv(task="mnist1d", control_steps=10**9))
    cfg_line = _api_line(lambda: metacurr.train(control_steps=10**9))
    assert env_line == "control_steps must be in [1, 100000], got 1000000000"
    assert cfg_line == "config.task.control_steps must be in [1, 100000], got 1000000000"
