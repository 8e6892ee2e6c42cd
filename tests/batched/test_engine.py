"""The batched engine on its own (no Gymnasium): N runs equal N `InnerRun` s, restarts, the group key,
and the package's shape (no Gymnasium / SB3 / env imports, files a reader can take in)."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import metacurr.batched
from metacurr.batched import BatchedEngine, group_key
from metacurr.config import MonitorConfig, TaskSpec
from metacurr.errors import ConfigError
from metacurr.inner_run import InnerRun
from metacurr.tasks import build_curriculum


def _spec(seed: int, **kw) -> TaskSpec:
    return TaskSpec(family="mnist1d", arch="mlp", n_stages=3, seed=seed, control_steps=3, inner_steps=2, **kw)


def _cur(spec: TaskSpec):
    return build_curriculum(spec.family, spec.n_stages, spec.seed, spec.params)


def _vec(state) -> np.ndarray:
    return state.to_vector().astype(np.float64)


def test_engine_runs_are_inner_runs_and_restart_alone():
    specs = [_spec(1), _spec(2)]
    eng = BatchedEngine(2, MonitorConfig(), torch.device("cpu"), threads=1)
    eng.start(specs, [_cur(s) for s in specs])
    refs = [InnerRun(s) for s in specs]
    for i, r in enumerate(refs):
        np.testing.assert_allclose(_vec(eng.state(i)), _vec(r.reset()), rtol=1e-4, atol=1e-5)
    w = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
    diverged = eng.step(w)
    assert not diverged.any() and eng.t.tolist() == [1, 1]
    for i, r in enumerate(refs):
        st = r.step(w[i])
        np.testing.assert_array_equal(eng.state(i).stage["weight"], w[i])  # the engine stamps the weights
        np.testing.assert_allclose(_vec(eng.state(i)), _vec(st), rtol=1e-4, atol=1e-5)
    # Run 1 restarts on a new task; run 0 carries on untouched.
    new = _spec(7)
    before = eng.run_params(0)
    eng.restart([1], [new], [_cur(new)])
    assert eng.t.tolist() == [1, 0] and eng.runs[1].spec.seed == 7 and eng.runs[1].steps_done == 0
    np.testing.assert_allclose(_vec(eng.state(1)), _vec(InnerRun(new).reset()), rtol=1e-4, atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in eng.run_params(0).items())
    eng.close()


def test_runs_of_another_shape_are_refused():
    a, b = _spec(1), _spec(2)
    cur_b = build_curriculum("digits", 3, 2, {})  # other input shape and stage sizes
    assert group_key(a, _cur(a), MonitorConfig()) != group_key(b, cur_b, MonitorConfig())
    eng = BatchedEngine(2, MonitorConfig(), torch.device("cpu"), threads=1)
    with pytest.raises(ConfigError, match="slot 1: curriculum .* differs from the batch's"):
        eng.start([a, b], [_cur(a), cur_b])
    eng.close()


def test_engine_package_knows_nothing_of_gymnasium_and_its_files_stay_small():
    for path in Path(metacurr.batched.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        bad = {m for m in mods if m and m.split(".")[0] in ("gymnasium", "stable_baselines3")}
        bad |= {m for m in mods if m and m.startswith(("metacurr.envs", "metacurr.agents"))}
        assert not bad, f"{path.name} imports {sorted(bad)}"
        assert len(path.read_text().splitlines()) < 400, path.name


def test_weight_arithmetic_has_one_home():
    import metacurr.controllers as controllers
    import metacurr.controllers.base as base
    import metacurr.controllers.mapping as mapping
    import metacurr.weights as weights

    assert controllers.WeightMapping is mapping.WeightMapping is weights.WeightMapping
    assert controllers.normalize is base.normalize is weights.normalize
    rows = np.array([[1.0, 3.0], [0.0, 0.0], [np.nan, 1.0]])
    np.testing.assert_array_equal(weights.normalize_rows(rows), np.stack([weights.normalize(r) for r in rows]))
