"""More rows of the bad-input table (`test_bad_input.CASES`): output folders, resource bounds, empty lists,
agent values, sweep metrics, the env's own arguments, policy inputs and user tensors.

Kept apart only for file length; `test_bad_input` builds these rows with its own helpers (``h``) and runs
them under the same checks (one line, exit 2 / ConfigError, nothing written).
"""

from __future__ import annotations

import math

import numpy as np
import torch

import metacurr
from metacurr import Curriculum

HUGE = 10**12
SEED_2_70 = str(2**70)


def _make(**kw):
    import gymnasium as gym

    return gym.make("metacurr/Rebalance-v0", task="mnist1d", **kw)


def _env(**kw):
    return _make(control_steps=2, inner_steps=1, **kw)


def _step(action, n_stages=3):
    env = _env(max_stages=n_stages)
    env.reset(seed=0)
    return env.step(action)


def _reset_with(options):
    env = _env()
    return env.reset(seed=0, options=options)


def _labels(stages, fn):
    for i, (x, y) in enumerate(stages):
        stages[i] = (x, fn(y))


def extra_cases(cli, api, h) -> list:
    tiny = h._tiny
    return [
        # ---- output folders: one guard for every command and the API ----
        cli("train/out-empty", lambda c: ["train", "--out", "", *h.TRAIN_TINY], "the path is empty"),
        cli("train/out-parent-is-a-file", lambda c: ["train", "--out", c.file("afile", "x") + "/sub", *h.TRAIN_TINY],
            "is a file, not a directory"),
        cli("evaluate/out-empty", lambda c: ["evaluate", "--controllers", "uniform", "--out", "", *h.EVAL_TINY],
            "the path is empty"),
        cli("train-agent/out-empty", lambda c: ["train-agent", "--out", "", "--wandb", "disabled"], "the path is empty"),
        cli("sweep/out-empty", lambda c: ["sweep", c.sweep(), "--local", "--out", ""], "the path is empty"),
        # ---- files that are not UTF-8 ----
        cli("train/config-not-utf8", lambda c: h._tr(c, "--config", c.bytes_file("latin1.yaml", b"task: {family: \xe9}\n")),
            "is not UTF-8 text"),
        cli("train-agent/config-not-utf8",
            lambda c: h._ag(c, None, "--config", c.bytes_file("latin1.yaml", b"name: \xff\xfe\n")), "is not UTF-8 text"),
        cli("sweep/not-utf8", lambda c: h._sw(c, c.bytes_file("s.yaml", b"method: grid\nname: \xe9\n")), "is not UTF-8 text"),
        # ---- absurd budgets and resources: the valid range, before anything is allocated ----
        cli("train/threads-100000", lambda c: h._tr(c, "--threads", "100000"), "--threads must be in [1, "),
        cli("train/seed-2-70", lambda c: h._tr(c, "--seed", SEED_2_70), "seed must be in [0, 4294967295]"),
        cli("train/config-batch-1e12", lambda c: h._tr_cfg(c, f"task: {{batch_size: {HUGE}}}\n"),
            "batch_size must be in [1, 65536]"),
        cli("train/config-val-size-1e12", lambda c: h._tr_cfg(c, f"monitor: {{val_size: {HUGE}}}\n"),
            "val_size must be in [1, 1048576]"),
        cli("train/config-control-steps-1e23", lambda c: ["train", "--config", c.file("r.yaml", f"task: {{control_steps: {10**23}}}\n"),
                                                          "--out", str(c.out), "--no-progress", "--wandb", "disabled"],
            "control_steps must be in [1, 100000]"),
        cli("train/config-lr-inf", lambda c: h._tr_cfg(c, "task: {lr: .inf}\n"), "expected a finite number"),
        cli("evaluate/seeds-1e9", lambda c: h._ev(c, "--controllers", "uniform", "--tasks", "quick", "--seeds", "1000000000",
                                                  tiny=False),
            "number of seeds must be in [1, 100000]"),
        cli("evaluate/seed-offset-2-70", lambda c: h._ev(c, "--controllers", "uniform", "--seed-offset", SEED_2_70),
            "seed offset must be in [0, "),
        cli("train-agent/timesteps-1e12", lambda c: h._ag(c, None, "--timesteps", str(HUGE)),
            "total_timesteps must be in [1, 10000000000]"),
        cli("train-agent/n-envs-1e6", lambda c: h._ag(c, None, "--n-envs", "1000000"), "n_envs must be in [1, 1024]"),
        cli("train-agent/threads-100000", lambda c: h._ag(c, "train: {threads: 100000}\n"), "train.threads must be in [1, "),
        cli("train-agent/env-control-steps-1e23", lambda c: h._ag(c, f"env: {{control_steps: {10**23}}}\n"),
            "control_steps must be in [1, 100000]"),
        # ---- agent values SB3 accepts but cannot train with ----
        cli("train-agent/gamma-2.5", lambda c: h._ag(c, "ppo: {gamma: 2.5}\n"), "ppo.gamma must be in [0.0, 1.0]"),
        cli("train-agent/gae-lambda-negative", lambda c: h._ag(c, "ppo: {gae_lambda: -0.1}\n"), "ppo.gae_lambda must be in"),
        cli("train-agent/net-arch-zero", lambda c: h._ag(c, "ppo: {policy_kwargs: {net_arch: [0]}}\n"),
            "net_arch must be a list of layer widths in [1, 4096]"),
        cli("train-agent/net-arch-negative", lambda c: h._ag(c, "ppo: {policy_kwargs: {net_arch: {pi: [8], vf: [-4]}}}\n"),
            "net_arch must be a list of layer widths"),
        # ---- lists: empty, or with an empty item ----
        cli("evaluate/tasks-empty", lambda c: h._ev(c, "--controllers", "uniform", "--tasks", "", tiny=False),
            "--tasks: empty list"),
        cli("evaluate/tasks-trailing-comma", lambda c: h._ev(c, "--controllers", "uniform", "--tasks", "mnist1d:mlp,",
                                                             tiny=False), "--tasks: empty item"),
        cli("evaluate/controllers-empty", lambda c: h._ev(c, "--controllers", ""), "--controllers: empty list"),
        cli("evaluate/controllers-trailing-comma", lambda c: h._ev(c, "--controllers", "uniform,"),
            "--controllers: empty item"),
        cli("evaluate/controllers-double-comma", lambda c: h._ev(c, "--controllers", "uniform,,heuristic"),
            "--controllers: empty item"),
        # ---- NAME{k=v} is read the same way by train and evaluate ----
        cli("train/controller-braces-unknown-kwarg", lambda c: h._tr(c, "--controller", "heuristic{alpah=1}"),
            "unknown parameter 'alpah'", True),
        cli("train/controller-braces-unclosed", lambda c: h._tr(c, "--controller", "heuristic{smoothing=1.0"),
            "bad controller 'heuristic{smoothing=1.0'; expected name{key=value,...}"),
        cli("train/controller-braces-clash",
            lambda c: h._tr_cfg(c, "controller: heuristic{smoothing=0.5}\ncontroller_kwargs: {smoothing: 0.2}\n"),
            "given both in"),
        # ---- sweeps: the metric and the overrides are checked before a trial runs or a file is written ----
        cli("sweep/metric-not-reported", lambda c: h._sw(c, c.sweep(metric={"name": "final_val_los", "goal": "minimize"})),
            "metric.name 'final_val_los' is not reported by `metacurr train`", True),
        cli("sweep-run/bad-override", lambda c: h._sr(c, "train", "controller_kwargs.pace=9", "--config",
                                                      c.file("b.yaml", "controller: linear-pacing\n")),
            "pace must be in (0, 1], got 9", sub=True),
        cli("sweep-run/metric-not-reported", lambda c: h._sr(c, "train", "{}", "--metric", "final_val_los"),
            "is not reported by `metacurr train`", True),
        # ---- Python API: the same checks as the CLI ----
        api("train/out-is-a-file", lambda c: lambda: metacurr.train(out=c.file("afile", "x"), control_steps=1),
            "is not a directory"),
        api("train/out-empty", lambda c: lambda: metacurr.train(out="", control_steps=1), "the path is empty"),
        api("train/out-parent-is-a-file",
            lambda c: lambda: metacurr.train(out=c.file("afile", "x") + "/sub", control_steps=1), "is a file, not a directory"),
        api("train/batch-1e12", lambda c: lambda: metacurr.train(batch_size=HUGE, out=c.out),
            "batch_size must be in [1, 65536]", api_out=True),
        api("train/seed-2-70", lambda c: lambda: metacurr.train(seed=2**70, out=c.out), "seed must be in [0, 4294967295]",
            api_out=True),
        api("train/val-size-1e12", lambda c: lambda: metacurr.train(config={"monitor": {"val_size": HUGE}}, out=c.out),
            "val_size must be in", api_out=True),
        api("train/controller-braces", lambda c: lambda: metacurr.train(controller="heuristic{alpah=1}", out=c.out),
            "unknown parameter 'alpah'", True, True),
        api("load_yaml/not-utf8", lambda c: lambda: metacurr.config.load_yaml(c.bytes_file("x.yaml", b"a: \xe9\n")),
            "is not UTF-8 text"),
        api("from_tensors/one-class",
            lambda c: lambda: Curriculum.from_tensors(*tiny(bad=lambda s: _labels(s, torch.zeros_like))),
            "a curriculum needs at least 2"),
        api("from_tensors/zero-features", lambda c: lambda: Curriculum.from_tensors(
            [(torch.zeros(4, 0), torch.tensor([0, 1, 0, 1]))], (torch.zeros(4, 0), torch.tensor([0, 1, 0, 1]))),
            "at least one feature"),
        api("from_tensors/val-class-untaught", lambda c: lambda: Curriculum.from_tensors(
            tiny()[0], (torch.randn(4, 4), torch.tensor([0, 1, 2, 7]))), "val holds class(es) [7] that no stage teaches"),
        api("from_tensors/bool-labels",
            lambda c: lambda: Curriculum.from_tensors(*tiny(bad=lambda s: _labels(s, lambda y: y > 0))),
            "integer class labels"),
        api("from_tensors/label-1e9",
            lambda c: lambda: Curriculum.from_tensors(*tiny(bad=lambda s: _labels(s, lambda y: y + 10**9))),
            "n_classes must be in [2, 100000]"),
        # ---- the environment's own arguments, reset options and actions ----
        api("env/divergence-penalty-nan", lambda c: lambda: _env(divergence_penalty=math.nan),
            "divergence_penalty: expected a finite number"),
        api("env/control-steps-negative", lambda c: lambda: _make(control_steps=-1), "control_steps must be in [1, 100000]"),
        api("env/inner-steps-zero", lambda c: lambda: _make(inner_steps=0), "inner_steps must be in [1, 100000]"),
        api("env/render-mode-human", lambda c: lambda: _env_direct(render_mode="human"), "unknown render_mode 'human'", True),
        api("env/reset-options-list", lambda c: lambda: _reset_with(["task"]), "reset options must be a mapping"),
        api("env/action-out-of-range", lambda c: lambda: _step(np.array([5.0, 0.0, 0.0])), "outside [-1.0, 1.0]"),
        api("env/action-wrong-length", lambda c: lambda: _step(np.zeros(7), n_stages=4),
            "action has shape (7,) but the action space is (4,)"),
        api("env/action-nan", lambda c: lambda: _step(np.array([np.nan, 0.0, 0.0])), "outside [-1.0, 1.0]"),
        api("env/batched-action-out-of-range", lambda c: lambda: _batched_step(np.array([[0.0, 0.0, 0.0], [0.0, 5.0, 0.0]])),
            "action value 5.0 at slot 1 of env 1 is outside [-1.0, 1.0]"),
        api("policy/obs-wrong-size", lambda c: lambda: metacurr.load_controller(f"policy:{c.bundle()}").predict(np.zeros(5)),
            "observation has shape (5,) but this policy reads"),
        api("policy/obs-3d", lambda c: lambda: metacurr.load_controller(f"policy:{c.bundle()}").predict(np.zeros((1, 1, 5))),
            "observation has shape (1, 1, 5)"),
        api("policy/tampered-manifest", lambda c: lambda: metacurr.load_controller(f"policy:{c.bundle('tampered-manifest')}"),
            "checksum mismatch for manifest.json"),
        api("policy/missing-model-zip", lambda c: lambda: metacurr.load_controller(f"policy:{c.bundle('no-model-zip')}"),
            "missing model.zip"),
    ]


def _batched_step(actions):
    from metacurr.envs.batched import BatchedRebalanceVecEnv

    venv = BatchedRebalanceVecEnv(n_envs=2, task="mnist1d", control_steps=2, inner_steps=1)
    venv.reset()
    return venv.step(actions)


def _env_direct(**kw):
    from metacurr.envs.rebalance import RebalanceEnv

    return RebalanceEnv(task="mnist1d", **kw)
