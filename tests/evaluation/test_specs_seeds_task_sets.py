"""Evaluation seeds, task sets, controller specs, ablation variants and masking."""

import numpy as np
import pytest

from metacurr.errors import ConfigError
from metacurr.evaluation.masking import MaskedController, resolve_mask
from metacurr.evaluation.specs import load_ablations, parse_controllers, validate_specs
from metacurr.evaluation.task_sets import (
    HELDOUT_SETS,
    IN_DISTRIBUTION,
    TASK_SETS,
    get_task_set,
    parse_tasks,
    task_specs,
)
from metacurr.monitors.state import GLOBAL_FEATURES, STAGE_FEATURES, LearningState
from metacurr.seeds import (
    EVAL_SEED_BASE,
    TRAIN_SEED_MAX,
    check_eval_seeds,
    check_train_seeds,
    eval_seeds,
)


def test_eval_and_train_seeds_are_disjoint_and_enforced():
    assert TRAIN_SEED_MAX < EVAL_SEED_BASE
    assert eval_seeds(3, offset=2) == [10_002, 10_003, 10_004]
    assert check_eval_seeds([10_000]) == [10_000]
    with pytest.raises(ConfigError, match="training range"):
        check_eval_seeds([10_000, 9_999])
    with pytest.raises(ConfigError, match="distinct"):
        check_eval_seeds([10_001, 10_001])
    with pytest.raises(ConfigError, match="reserved for evaluation"):
        check_train_seeds([0, EVAL_SEED_BASE])
    with pytest.raises(ConfigError):
        check_train_seeds([-1])
    with pytest.raises(ConfigError):
        eval_seeds(0)


def _inside(task: dict, dist) -> bool:
    """Could ``task`` be drawn from training distribution ``dist``? (the library's own check)"""
    from metacurr.config import TaskSpec
    from metacurr.envs.task_distribution import in_support

    return in_support(dist, TaskSpec(family=task["family"], arch=task["arch"], n_stages=task["n_stages"], params=task["params"]))


def test_heldout_sets_exclude_the_agents_training_distributions():
    dists = pytest.importorskip("metacurr.envs.task_distribution").DISTRIBUTIONS
    for name in HELDOUT_SETS:
        tasks = get_task_set(name)
        assert tasks and len({t["name"] for t in tasks}) == len(tasks)
        for t in tasks:
            for d in dists.values():
                assert not _inside(t, d), (name, t["name"], d.name)
    # the in-distribution set really is inside (so the check above can fail)
    assert all(any(_inside(t, d) for d in dists.values()) for t in get_task_set(IN_DISTRIBUTION))
    # the validation set (design choices are made on it) lies inside the distribution agents train on
    assert all(_inside(t, dists["default-mlp"]) and _inside(t, dists["default"]) for t in get_task_set("validation"))
    # the imbalance validation set lies inside the distributions with that axis, and only there
    for t in get_task_set("validation-imbalance"):
        assert _inside(t, dists["mixed-mlp-imbalance"]) and _inside(t, dists["mixed-imbalance"])
        assert not _inside(t, dists["mixed-mlp"]) and not _inside(t, dists["mixed"])
    from metacurr.envs.task_distribution import check_disjoint

    for d in dists.values():
        for name in HELDOUT_SETS:
            check_disjoint(d, task_specs(name, seed=10_000))
        with pytest.raises(ConfigError, match="training seed"):
            check_disjoint(d, task_specs(name, seed=5))


def test_task_sets_are_valid_task_specs():
    for name in TASK_SETS:
        specs = task_specs(name, seed=10_000)
        assert specs and all(s.seed == 10_000 for s in specs)


def test_parse_tasks():
    assert parse_tasks("quick")[0] == "quick"
    label, tasks = parse_tasks("mnist1d:mlp,sequence:gru:4")
    assert label == "custom" and tasks[1] == {"name": "sequence:gru:4", "family": "sequence", "arch": "gru",
                                               "n_stages": 4, "params": {}}
    with pytest.raises(ConfigError, match="valid choices: .*heldout-arch"):
        parse_tasks("nope")
    with pytest.raises(ConfigError):
        parse_tasks("mnist1d:mlp:x")


def test_parse_controllers_with_kwargs_and_prefixes():
    specs = parse_controllers("uniform,heuristic{smoothing=1.0,max_step=1.0},best-static{weights=[0.2,0.3,0.5]},open-loop:heuristic")
    assert [s.label for s in specs] == ["uniform", "heuristic{smoothing=1.0,max_step=1.0}",
                                        "best-static{weights=[0.2,0.3,0.5]}", "open-loop:heuristic"]
    assert specs[1].kwargs == {"smoothing": 1.0, "max_step": 1.0} and specs[2].kwargs == {"weights": [0.2, 0.3, 0.5]}
    assert specs[3].controller == "heuristic" and specs[3].mask == "open-loop"
    validate_specs(specs)
    with pytest.raises(ConfigError, match="valid choices"):
        validate_specs(parse_controllers("uniform,nope"))
    with pytest.raises(ConfigError, match="unknown parameter"):
        validate_specs(parse_controllers("heuristic{bogus=1}"))
    with pytest.raises(ConfigError, match="listed twice"):
        validate_specs(parse_controllers("uniform,uniform"))


def test_ablations_yaml_is_valid():
    specs, defaults = load_ablations("experiments/ablations.yaml")
    validate_specs(specs)
    names = {s.label: s for s in specs}
    assert names["heuristic-no-smoothing"].kwargs == {"smoothing": 1.0, "max_step": 1.0}
    for k in ("entropy", "grad", "stability"):
        assert names[f"heuristic-no-{k}"].kwargs == {f"use_{k}": False}
    assert names["uniform-cosine-lr"].task == {"lr_schedule": "cosine"}
    assert names["uniform-augment"].task == {"augment": 0.05} and names["uniform-batchnorm"].task == {"norm": True}
    assert defaults["tasks"] in TASK_SETS


def test_ablations_yaml_bad_keys(tmp_path):
    p = tmp_path / "a.yaml"
    p.write_text("variants:\n  - {name: x, controller: uniform, task: {seed: 3}}\n")
    with pytest.raises(ConfigError, match="fixed key"):
        load_ablations(p)
    p.write_text("variants:\n  - {name: x, controller: uniform, colour: red}\n")
    with pytest.raises(ConfigError, match="valid choices"):
        load_ablations(p)


def test_open_loop_mask_freezes_indicators():
    from metacurr.controllers import make_controller

    assert "progress" not in resolve_mask("open-loop") and "entropy" in resolve_mask("open-loop")
    with pytest.raises(ConfigError):
        resolve_mask(["nope"])

    def st(ent):
        stage = {k: np.full(3, 0.5) for k in STAGE_FEATURES}
        stage["entropy"] = np.asarray(ent, dtype=float)
        return LearningState(1, 3, stage, {k: 0.0 for k in GLOBAL_FEATURES})

    m = MaskedController(make_controller("heuristic"), "open-loop")
    m.reset(3, np.random.default_rng(0))
    m.update(st([0.5, 0.5, 0.5]))
    w = m.update(st([0.5, 0.5, 5.0]))  # an entropy spike it must not see
    assert np.allclose(w, w[0])


def test_the_imbalance_axis_draws_balanced_or_long_tailed_stages():
    import numpy as np

    from metacurr.envs.task_distribution import get_distribution
    from metacurr.tasks.imbalance import stage_imbalance

    dist = get_distribution("mixed-mlp-imbalance")
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(200):
        spec = dist.sample(rng)
        r = spec.params["imbalance"]
        assert len(r) == spec.n_stages and stage_imbalance(r, spec.n_stages) == r  # a valid per-stage list
        ratios += r
    ratios = np.asarray(ratios)
    skewed = ratios[ratios != 1.0]
    assert skewed.min() >= 2.0 and skewed.max() <= 8.0
    assert 0.4 < len(skewed) / len(ratios) < 0.6  # each stage long-tailed with probability 0.5
    # the distributions without the axis never draw it, so their samples are unchanged
    assert "imbalance" not in get_distribution("mixed-mlp").sample(np.random.default_rng(0)).params
