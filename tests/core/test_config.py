import pytest

from metacurr.config import MonitorConfig, RunConfig, TaskSpec, from_dict, load_yaml, run_config
from metacurr.errors import ConfigError


def test_defaults_resolve():
    cfg = run_config({})
    assert isinstance(cfg, RunConfig) and cfg.task == TaskSpec() and cfg.monitor == MonitorConfig()


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"task": {"nope": 1}}, "unknown key config.task.nope"),
        ({"task": {"family": "nope"}}, "unknown task 'nope'"),
        ({"task": {"arch": "resnet"}}, "unknown arch 'resnet'"),
        ({"task": {"family": "sequence", "arch": "mlp"}}, "incompatible"),
        ({"task": {"control_steps": 0}}, "control_steps must be positive"),
        ({"task": {"inner_steps": -1}}, "inner_steps must be positive"),
        ({"task": {"lr": "fast"}}, "expected a number"),
        ({"task": {"lr": float("nan")}}, "finite"),
        ({"task": {"seed": True}}, "expected an integer"),
        ({"task": {"n_stages": 9}}, "n_stages must be in [2, 8]"),
        ({"task": {"optimizer": "rmsprop"}}, "unknown optimizer"),
        ({"task": {"params": {"bogus": 1}}}, "unknown parameter 'bogus'"),
        ({"monitor": {"probe_size": 0}}, "probe_size must be positive"),
        ({"device": "tpu"}, "unknown device"),
        ({"bogus": 1}, "unknown key config.bogus"),
    ],
)
def test_bad_config_is_one_line_config_error(data, fragment):
    with pytest.raises(ConfigError) as e:
        run_config(data)
    msg = str(e.value)
    assert fragment in msg and "\n" not in msg


def test_unknown_key_lists_valid_choices():
    with pytest.raises(ConfigError, match="valid choices: family, arch"):
        from_dict(TaskSpec, {"famly": "mnist1d"})


def test_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_yaml(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(lst)
