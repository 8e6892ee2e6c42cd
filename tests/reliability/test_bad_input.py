"""Bad input, table-driven: every command and the Python API refuse malformed input the same way.

For every row: exit code 2 (``ConfigError`` for the API), one line on stderr naming the problem (a
fragment is checked), ``valid choices`` where the input names a member of a fixed set, no traceback,
and nothing written: ``--out`` does not exist afterwards, and a pre-existing ``--out`` holding a marker
file is left byte-for-byte unchanged; the working directory stays empty too (no default output
folders). Rows marked ``sub`` also run end to end as ``python -m metacurr.cli ...`` in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from bad_input_rows import extra_cases  # more rows (pytest puts tests/reliability on sys.path)

import metacurr
from metacurr import Curriculum
from metacurr.cli import main
from metacurr.errors import ConfigError

# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """A tiny policy bundle with max_stages 3 (trained in-process, like tests/agents), plus corrupted copies."""
    root = tmp_path_factory.mktemp("bundles")
    cfg = root / "agent.yaml"
    cfg.write_text(
        "name: tiny3\nenv: {max_stages: 3, control_steps: 2, inner_steps: 1}\n"
        "train: {total_timesteps: 8, n_envs: 1, vec_env: dummy, checkpoint_every: 8}\n"
        "ppo: {n_steps: 8, batch_size: 8, n_epochs: 1}\n"
    )
    assert main(["train-agent", "--config", str(cfg), "--out", str(root / "run"), "--wandb", "disabled",
                 "--no-progress"]) == 0
    good = root / "run" / "policy"

    def variant(name: str, change: Callable[[Path], None]) -> Path:
        d = root / name
        shutil.copytree(good, d)
        change(d)
        return d

    def rechecksum(d: Path) -> None:  # a tampered file whose manifest was regenerated to match
        from metacurr.agents.bundle import MANIFEST_SUM, manifest_digest

        man = json.loads((d / "manifest.json").read_text())
        man["files"] = {f: hashlib.sha256((d / f).read_bytes()).hexdigest() for f in man["files"]}
        man[MANIFEST_SUM] = manifest_digest(man)
        (d / "manifest.json").write_text(json.dumps(man))

    def garbage_weights(d: Path) -> None:
        (d / "policy.pt").write_bytes(b"not a torch file at all")
        rechecksum(d)

    def wrong_normaliser(d: Path) -> None:
        np.savez(d / "normalizer.npz", mean=np.zeros(3))
        rechecksum(d)

    def tampered_manifest(d: Path) -> None:  # the mapping edited, file checksums intact
        man = json.loads((d / "manifest.json").read_text())
        man["mapping"]["smoothing"] = 0.0
        (d / "manifest.json").write_text(json.dumps(man))

    return {
        "tampered-manifest": variant("tampered", tampered_manifest),
        "no-model-zip": variant("nozip", lambda d: (d / "model.zip").unlink()),
        "good": good,
        "truncated-manifest": variant("truncated", lambda d: (d / "manifest.json").write_text(
            (d / "manifest.json").read_text()[:200])),
        "list-manifest": variant("listman", lambda d: (d / "manifest.json").write_text("[1, 2]")),
        "garbage-weights": variant("garbage", garbage_weights),
        "wrong-normaliser": variant("badnorm", wrong_normaliser),
    }


@dataclass
class Ctx:
    """Paths a row may use: inputs live in ``inputs`` (never in ``out`` or the working directory)."""

    tmp: Path
    out: Path
    bundles: dict

    def file(self, name: str, text: str) -> str:
        p = self.tmp / "inputs" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return str(p)

    def bytes_file(self, name: str, data: bytes) -> str:
        p = self.tmp / "inputs" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return str(p)

    def bundle(self, which: str = "good") -> str:
        return str(self.bundles[which])

    def sweep(self, **changes) -> str:
        """A valid 1-point local sweep over `metacurr train`, with ``changes`` applied (None deletes)."""
        import yaml

        base = self.file("base.yaml", "task: {family: mnist1d, arch: mlp, control_steps: 2, inner_steps: 2}\n"
                                      "controller: linear-pacing\n")
        data = {"name": "t", "program": "metacurr", "method": "grid",
                "command": ["${env}", "${program}", "sweep-run", "train", "${args_json}", "--config", base],
                "metric": {"name": "final_val_loss", "goal": "minimize"},
                "parameters": {"controller_kwargs.pace": {"values": [0.5]}}}
        for k, v in changes.items():
            if v is None:
                data.pop(k, None)
            else:
                data[k] = v
        return self.file("sweep.yaml", yaml.safe_dump(data, sort_keys=False))


def _tiny(n_stages=3, n=12, d=4, bad=None):
    """Stages as (X, y) lists; ``bad`` mutates them to make one input malformed."""
    g = torch.Generator().manual_seed(0)
    stages = [(torch.randn(n, d, generator=g), torch.randint(0, 3, (n,), generator=g)) for _ in range(n_stages)]
    val = (torch.randn(n, d, generator=g), torch.randint(0, 3, (n,), generator=g))
    if bad is not None:
        bad(stages)
    return stages, val


def _nan(stages):
    stages[1][0][3, 2] = float("nan")


def _inf(stages):
    stages[0][0][0, 0] = float("inf")


def _scores_data(n=10):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, generator=g), torch.randint(0, 3, (n,), generator=g), torch.rand(n, generator=g)


# --------------------------------------------------------------------------- the table

TRAIN_TINY = ["--control-steps", "2", "--inner-steps", "2", "--no-progress", "--wandb", "disabled"]
EVAL_TINY = ["--tasks", "quick", "--seeds", "1", "--control-steps", "2", "--inner-steps", "2", "--no-progress"]


@dataclass
class Case:
    id: str
    kind: str  # "cli" or "api"
    make: Callable[[Ctx], object]  # cli: argv list; api: a zero-argument callable
    fragment: str
    choices: bool = False  # the message must list the valid choices
    sub: bool = False  # also run it as a subprocess
    api_out: bool = False  # the API call writes into ctx.out when it does not fail


def cli(id, make, fragment, choices=False, sub=False):
    return Case(id, "cli", make, fragment, choices, sub)


def api(id, make, fragment, choices=False, api_out=False):
    return Case(f"api:{id}", "api", make, fragment, choices, False, api_out)


def _tr(c: Ctx, *args) -> list[str]:
    return ["train", *args, "--out", str(c.out), *TRAIN_TINY]


def _tr_cfg(c: Ctx, text: str, *args) -> list[str]:
    return _tr(c, "--config", c.file("run.yaml", text), *args)


def _ag(c: Ctx, text: str | None, *args) -> list[str]:
    cfg = ["--config", c.file("agent.yaml", text)] if text is not None else []
    return ["train-agent", *cfg, *args, "--out", str(c.out), "--wandb", "disabled", "--no-progress"]


def _ev(c: Ctx, *args, tiny=True) -> list[str]:
    return ["evaluate", *args, "--out", str(c.out), *(EVAL_TINY if tiny else ["--no-progress"])]


def _abl(c: Ctx, text: str) -> list[str]:
    return ["evaluate", "--ablations", c.file("abl.yaml", text), "--out", str(c.out), "--no-progress"]


def _sw(c: Ctx, path: str, *args) -> list[str]:
    return ["sweep", path, "--local", "--out", str(c.out), *args]


def _sr(c: Ctx, *args) -> list[str]:
    return ["sweep-run", *args, "--out", str(c.out), "--wandb", "disabled"]


CASES = [
    # ---- train: names, types, budgets, stage counts, files ----
    cli("train/unknown-task", lambda c: _tr(c, "--task", "mnist2d"), "unknown task 'mnist2d'", True, sub=True),
    cli("train/unknown-arch", lambda c: _tr(c, "--arch", "resnet"), "unknown arch 'resnet'", True),
    cli("train/incompatible-arch", lambda c: _tr(c, "--task", "sequence", "--arch", "cnn"), "incompatible", True),
    cli("train/unknown-controller", lambda c: _tr(c, "--controller", "heurstic"), "unknown controller 'heurstic'", True),
    cli("train/unknown-device", lambda c: _tr(c, "--device", "tpu"), "unknown device 'tpu'", True),
    # cuda:63 exists on no machine: "not available" on CPU-only and GPU machines alike
    cli("train/unavailable-device", lambda c: _tr(c, "--device", "cuda:63"), "device 'cuda:63' is not available", True),
    cli("train/unknown-wandb-mode", lambda c: _tr(c, "--wandb", "loud"), "invalid choice: 'loud'", True),
    cli("train/zero-control-steps", lambda c: _tr(c, "--control-steps", "0"), "positive integer"),
    cli("train/negative-inner-steps", lambda c: _tr(c, "--inner-steps", "-2"), "positive integer"),
    cli("train/negative-seed", lambda c: _tr(c, "--seed", "-1"), "integer >= 0"),
    cli("train/zero-threads", lambda c: _tr(c, "--threads", "0"), "positive integer"),
    cli("train/unknown-optimizer", lambda c: _tr_cfg(c, "task: {optimizer: adagrad}\n"), "unknown optimizer 'adagrad'", True),
    cli("train/unknown-lr-schedule", lambda c: _tr_cfg(c, "task: {lr_schedule: step}\n"), "unknown lr_schedule", True),
    cli("train/n-stages-9", lambda c: _tr_cfg(c, "task: {n_stages: 9}\n"), "n_stages must be in [2, 8]"),
    cli("train/config-zero-batch", lambda c: _tr_cfg(c, "task: {batch_size: 0}\n"), "batch_size must be positive"),
    cli("train/config-seed-string", lambda c: _tr_cfg(c, "task: {seed: one}\n"), "config.task.seed: expected an integer"),
    cli("train/config-norm-string", lambda c: _tr_cfg(c, "task: {norm: 'yes'}\n"), "config.task.norm: expected true/false"),
    cli("train/config-lr-nan", lambda c: _tr_cfg(c, "task: {lr: .nan}\n"), "expected a finite number"),
    cli("train/config-task-list", lambda c: _tr_cfg(c, "task: [mnist1d]\n"), "config.task: expected a mapping"),
    cli("train/config-top-level-list", lambda c: _tr_cfg(c, "- task\n"), "top level must be a mapping"),
    cli("train/unknown-key-top", lambda c: _tr_cfg(c, "controler: uniform\n"), "unknown key config.controler", True),
    cli("train/unknown-key-task", lambda c: _tr_cfg(c, "task: {epochs: 3}\n"), "unknown key config.task.epochs", True),
    cli("train/unknown-key-monitor", lambda c: _tr_cfg(c, "monitor: {probe: 3}\n"), "unknown key config.monitor.probe", True),
    cli("train/unknown-task-param", lambda c: _tr_cfg(c, "task: {params: {noise: 0.1}}\n"), "unknown parameter 'noise'", True),
    cli("train/task-param-wrong-type", lambda c: _tr_cfg(c, "task: {params: {noise_max: high}}\n"),
        "noise_max must be a number"),
    cli("train/label-noise-per-stage-mismatch", lambda c: _tr_cfg(c, "task: {params: {label_noise: [0.1, 0.2]}}\n"),
        "label_noise has 2 rates but there are 3 stages"),
    cli("train/custom-family-on-cli", lambda c: _tr_cfg(c, "task: {family: custom}\n"), "unknown task 'custom'", True),
    cli("train/unknown-controller-kwarg",
        lambda c: _tr_cfg(c, "controller: heuristic\ncontroller_kwargs: {alpah: 1}\n"), "unknown parameter 'alpah'", True),
    cli("train/monitor-zero", lambda c: _tr_cfg(c, "monitor: {probe_size: 0}\n"), "probe_size must be positive"),
    cli("train/yaml-syntax", lambda c: _tr_cfg(c, "task: {family: [mnist1d\n"), "malformed YAML"),
    cli("train/missing-config", lambda c: _tr(c, "--config", str(c.tmp / "inputs" / "nope.yaml")), "config file not found"),
    cli("train/missing-bundle", lambda c: _tr(c, "--controller", f"policy:{c.tmp / 'nope'}"), "policy bundle not found"),
    cli("train/bundle-3-on-5-stages", lambda c: _tr_cfg(c, "task: {n_stages: 5}\n", "--controller", f"policy:{c.bundle()}"),
        "at most 3", True, sub=True),
    cli("train/bundle-truncated-manifest", lambda c: _tr(c, "--controller", f"policy:{c.bundle('truncated-manifest')}"),
        "manifest.json is not valid JSON"),
    cli("train/bundle-garbage-weights", lambda c: _tr(c, "--controller", f"policy:{c.bundle('garbage-weights')}"),
        "cannot read policy.pt"),
    cli("train/out-is-a-file", lambda c: ["train", "--out", c.file("afile", "x"), *TRAIN_TINY], "is not a directory"),
    # ---- train-agent ----
    cli("train-agent/unknown-distribution", lambda c: _ag(c, "env: {distribution: everything}\n"),
        "unknown task distribution 'everything'", True),
    cli("train-agent/unknown-reward", lambda c: _ag(c, "env: {reward: accuracy}\n"), "unknown reward 'accuracy'", True),
    cli("train-agent/unknown-vec-env", lambda c: _ag(c, None, "--vec-env", "threads"), "unknown vec_env 'threads'", True),
    cli("train-agent/unavailable-device", lambda c: _ag(c, "env: {device: 'cuda:63'}\n"), "is not available", True),
    cli("train-agent/unknown-mapping-mode", lambda c: _ag(c, "env: {mapping: {mode: both}}\n"),
        "unknown weight mapping mode 'both'", True),
    cli("train-agent/unknown-hidden-feature", lambda c: _ag(c, "env: {hide_features: [gradalign]}\n"),
        "unknown observation feature 'gradalign' to hide", True),
    cli("train-agent/zero-timesteps", lambda c: _ag(c, None, "--timesteps", "0"), "total_timesteps must be positive"),
    cli("train-agent/zero-n-envs", lambda c: _ag(c, None, "--n-envs", "0"), "n_envs must be positive"),
    cli("train-agent/batched-processes-over-n-envs",
        lambda c: _ag(c, None, "--vec-env", "batched", "--n-envs", "2", "--batched-processes", "3"),
        "train.batched_processes must be an integer in [1, n_envs=2], got 3"),
    cli("train-agent/batched-processes-not-batched", lambda c: _ag(c, None, "--vec-env", "subproc", "--batched-processes", "2"),
        "apply to vec_env: batched, not subproc"),
    cli("train-agent/batched-compile-string", lambda c: _ag(c, "train: {vec_env: batched, batched_compile: maybe}\n"),
        "config.train.batched_compile: expected true/false, got 'maybe'"),
    cli("train-agent/group-processes-not-grouped", lambda c: _ag(c, "train: {vec_env: subproc, group_processes: true}\n"),
        "train.group_processes applies to vec_env: grouped, not subproc"),
    cli("train-agent/max-stages-string", lambda c: _ag(c, "env: {max_stages: three}\n"), "config.env.max_stages: expected an integer"),
    cli("train-agent/max-stages-zero", lambda c: _ag(c, "env: {max_stages: 0}\n"), "max_stages"),
    cli("train-agent/unknown-key-top", lambda c: _ag(c, "enviroment: {}\n"), "unknown key config.enviroment", True),
    cli("train-agent/unknown-key-env", lambda c: _ag(c, "env: {stages: 3}\n"), "unknown key config.env.stages", True),
    cli("train-agent/unknown-key-train", lambda c: _ag(c, "train: {timesteps: 3}\n"), "unknown key config.train.timesteps", True),
    cli("train-agent/unknown-key-mapping", lambda c: _ag(c, "env: {mapping: {temperature: 1}}\n"), "temperature", True),
    cli("train-agent/unknown-key-env-monitor", lambda c: _ag(c, "env: {monitor: {bins: 3}}\n"), "bins", True),
    cli("train-agent/unknown-activation", lambda c: _ag(c, "ppo: {policy_kwargs: {activation_fn: gelu}}\n"),
        "activation_fn 'gelu'", True),
    cli("train-agent/ppo-n-steps-zero", lambda c: _ag(c, "ppo: {n_steps: 0}\n", "--n-envs", "1"), "invalid ppo settings"),
    cli("train-agent/ppo-learning-rate-string", lambda c: _ag(c, "ppo: {learning_rate: fast}\n"), "invalid ppo settings"),
    cli("train-agent/ppo-net-arch-string", lambda c: _ag(c, "ppo: {policy_kwargs: {net_arch: wide}}\n"),
        "invalid ppo settings"),
    cli("train-agent/heldout-eval-task-set", lambda c: _ag(c, "train: {eval_tasks: quick}\n"),
        "'quick' is a held-out task set", True),
    cli("train-agent/unknown-eval-task-set", lambda c: _ag(c, "train: {eval_tasks: quik}\n"), "unknown task set 'quik'", True),
    cli("train-agent/eval-seed", lambda c: _ag(c, "train: {seed: 10001}\n"), "evaluation seeds start at 10000"),
    cli("train-agent/missing-config", lambda c: _ag(c, None, "--config", str(c.tmp / "nope.yaml")), "config file not found"),
    cli("train-agent/yaml-syntax", lambda c: _ag(c, "env: {max_stages: 3\n"), "malformed YAML", sub=True),
    # ---- evaluate ----
    cli("evaluate/unknown-controller", lambda c: _ev(c, "--controllers", "uniform,heurstic"), "unknown controller 'heurstic'", True),
    cli("evaluate/unknown-task-set", lambda c: _ev(c, "--controllers", "uniform", "--tasks", "quik", tiny=False),
        "unknown task set 'quik'", True),
    cli("evaluate/unknown-family", lambda c: _ev(c, "--controllers", "uniform", "--tasks", "cifar:mlp", tiny=False),
        "unknown task 'cifar'", True, sub=True),
    cli("evaluate/n-stages-9", lambda c: _ev(c, "--controllers", "uniform", "--tasks", "mnist1d:mlp:9", tiny=False),
        "n_stages must be"),
    cli("evaluate/zero-seeds", lambda c: _ev(c, "--controllers", "uniform", "--seeds", "0"), "positive integer"),
    cli("evaluate/zero-workers", lambda c: _ev(c, "--controllers", "uniform", "--workers", "0"), "positive integer"),
    cli("evaluate/seed-below-10000", lambda c: _ev(c, "--controllers", "uniform", "--seed-offset", "-10000"),
        "integer >= 0"),
    cli("evaluate/unknown-controller-kwarg", lambda c: _ev(c, "--controllers", "heuristic{alpah=1}"),
        "unknown parameter 'alpah'", True),
    cli("evaluate/unknown-device", lambda c: _ev(c, "--controllers", "uniform", "--device", "tpu"), "unknown device", True),
    cli("evaluate/unavailable-device", lambda c: _ev(c, "--controllers", "uniform", "--device", "cuda:63"),
        "is not available", True),
    cli("evaluate/bundle-3-on-5-stages",
        lambda c: _ev(c, "--controllers", f"uniform,policy:{c.bundle()}", "--tasks", "mnist1d:mlp:5", "--seeds", "1",
                      tiny=False), "at most 3", True),
    cli("evaluate/bundle-list-manifest", lambda c: _ev(c, "--controllers", f"policy:{c.bundle('list-manifest')}"),
        "manifest.json"),
    cli("evaluate/bundle-wrong-normaliser", lambda c: _ev(c, "--controllers", f"policy:{c.bundle('wrong-normaliser')}"),
        "normalizer.npz"),
    cli("evaluate/ablations-unknown-key", lambda c: _abl(c, "seed: 3\nvariants: [{name: u, controller: uniform}]\n"),
        "unknown key 'seed'", True),
    cli("evaluate/ablations-unknown-variant-key",
        lambda c: _abl(c, "variants: [{name: u, controler: uniform}]\n"), "unknown key variants[0].controler", True),
    cli("evaluate/ablations-unknown-task-key",
        lambda c: _abl(c, "variants: [{name: u, controller: uniform, task: {epochs: 2}}]\n"), "variants[0].task.epochs", True),
    cli("evaluate/ablations-seeds-string",
        lambda c: _abl(c, "seeds: many\nvariants: [{name: u, controller: uniform}]\n"), "number of seeds"),
    cli("evaluate/ablations-variant-bad-param",
        lambda c: _abl(c, "tasks: 'mnist1d:mlp'\nvariants: [{name: u, controller: uniform, task: {params: {noise_max: 9}}}]\n"),
        "noise_max must be a number in [0.0, 2.0], got 9"),
    cli("evaluate/ablations-yaml-syntax", lambda c: _abl(c, "variants: [{name: u\n"), "malformed YAML"),
    # ---- sweep / agent / sweep-run ----
    cli("sweep/unknown-parameter",
        lambda c: _sw(c, c.sweep(parameters={"controller_kwargs.pase": {"values": [0.5]}})), "unknown parameter 'pase'", True),
    cli("sweep/unknown-method", lambda c: _sw(c, c.sweep(method="annealing")), "unknown sweep method", True),
    cli("sweep/unknown-distribution",
        lambda c: _sw(c, c.sweep(method="random", parameters={"task.lr": {"distribution": "gauss", "min": 0, "max": 1}}),
                      "--count", "1"), "distribution of parameter", True),
    cli("sweep/unknown-top-key", lambda c: _sw(c, c.sweep(paramters={})), "unknown sweep key 'paramters'", True),
    cli("sweep/run-cap-string", lambda c: _sw(c, c.sweep(run_cap="ten")), "run_cap must be a positive integer"),
    cli("sweep/zero-workers", lambda c: _sw(c, c.sweep(), "--workers", "0"), "positive integer"),
    cli("sweep/missing-file", lambda c: _sw(c, str(c.tmp / "nope.yaml")), "config file not found"),
    cli("sweep/yaml-syntax", lambda c: _sw(c, c.file("s.yaml", "method: grid\nparameters: {a: [1\n")), "malformed YAML"),
    cli("agent/bad-sweep-id", lambda c: ["agent", "a/b/c/d", "--out-root", str(c.out)], "bad sweep id", sub=True),
    cli("agent/zero-count", lambda c: ["agent", "me/p/abc", "--count", "0", "--out-root", str(c.out)], "positive integer"),
    cli("sweep-run/unknown-target", lambda c: _sr(c, "evaluate", "{}"), "sweep target 'evaluate'", True),
    cli("sweep-run/self-target", lambda c: _sr(c, "sweep-run", "{}"), "sweep target 'sweep-run'", True),
    cli("sweep-run/malformed-json", lambda c: _sr(c, "train", '{"task.seed": '), "malformed JSON"),
    cli("sweep-run/not-a-parameter", lambda c: _sr(c, "train", "learning-rate"), "expected JSON, a JSON file or name=value"),
    cli("sweep-run/parameters-not-an-object", lambda c: _sr(c, "train", "[1, 2]"), "expected JSON"),
    cli("sweep-run/unknown-wandb-mode", lambda c: ["sweep-run", "train", "{}", "--out", str(c.out), "--wandb", "loud"],
        "invalid choice: 'loud'", True),
    cli("sweep-run/missing-base", lambda c: _sr(c, "train", "{}", "--config", str(c.tmp / "nope.yaml")), "base config"),
    # ---- the command line itself ----
    cli("cli/unknown-command", lambda c: ["trian", "--out", str(c.out)], "invalid choice: 'trian'", True),
    cli("list/unknown-flag", lambda c: ["list", "--verbose"], "unrecognized arguments: --verbose"),
    cli("list/extra-argument", lambda c: ["list", "tasks"], "unrecognized arguments: tasks"),
    # ---- Python API ----
    api("train/unknown-task", lambda c: lambda: metacurr.train("mnist2d", out=c.out), "unknown task 'mnist2d'", True, True),
    api("train/unknown-arch", lambda c: lambda: metacurr.train(arch="resnet", out=c.out), "unknown arch", True, True),
    api("train/unknown-controller", lambda c: lambda: metacurr.train(controller="nope", out=c.out), "unknown controller", True,
        True),
    api("train/unknown-optimizer", lambda c: lambda: metacurr.train(optimizer="adagrad", out=c.out), "unknown optimizer", True,
        True),
    api("train/unknown-field", lambda c: lambda: metacurr.train(epochs=3, out=c.out), "unknown key config.task.epochs", True,
        True),
    api("train/unknown-config-level", lambda c: lambda: metacurr.train(config={"monitor": {"bins": 3}}, out=c.out),
        "unknown key config.monitor.bins", True, True),
    api("train/n-stages-9", lambda c: lambda: metacurr.train(n_stages=9, out=c.out), "n_stages must be in [2, 8]", api_out=True),
    api("train/zero-budget", lambda c: lambda: metacurr.train(control_steps=0, out=c.out), "control_steps must be positive",
        api_out=True),
    api("train/negative-seed", lambda c: lambda: metacurr.train(seed=-5, out=c.out), "seed must be >= 0", api_out=True),
    api("train/seed-float", lambda c: lambda: metacurr.train(seed=1.5, out=c.out), "expected an integer", api_out=True),
    api("train/bundle-3-on-5-stages", lambda c: lambda: metacurr.train(
        controller=f"policy:{c.bundle()}", n_stages=5, control_steps=1, inner_steps=1, out=c.out), "at most 3", True, True),
    api("train/curriculum-9-stages", lambda c: lambda: metacurr.train(
        Curriculum.from_tensors(*_tiny(9)), control_steps=1, inner_steps=1, out=c.out), "n_stages must be in [2, 8]",
        api_out=True),
    api("from_tensors/nan", lambda c: lambda: Curriculum.from_tensors(*_tiny(bad=_nan)), "stage 1: X contains NaN or inf"),
    api("from_tensors/inf", lambda c: lambda: Curriculum.from_tensors(*_tiny(bad=_inf)), "stage 0: X contains NaN or inf"),
    api("from_tensors/mismatched-lengths",
        lambda c: lambda: Curriculum.from_tensors(*_tiny(bad=lambda s: s.__setitem__(2, (s[2][0], s[2][1][:-1])))),
        "stage 2: X has 12 rows but y has 11"),
    api("from_tensors/empty-stage",
        lambda c: lambda: Curriculum.from_tensors(*_tiny(bad=lambda s: s.__setitem__(1, (s[1][0][:0], s[1][1][:0])))),
        "stage 1: empty"),
    api("from_tensors/no-stages", lambda c: lambda: Curriculum.from_tensors([], _tiny()[1]), "non-empty list"),
    api("from_tensors/float-labels",
        lambda c: lambda: Curriculum.from_tensors(*_tiny(bad=lambda s: s.__setitem__(0, (s[0][0], s[0][1] + 0.5)))),
        "integer class labels"),
    api("from_tensors/nan-val", lambda c: lambda: Curriculum.from_tensors(
        _tiny()[0], (torch.full((4, 4), float("nan")), torch.zeros(4, dtype=torch.long))), "val: X contains NaN"),
    api("from_tensors/ragged-lists", lambda c: lambda: Curriculum.from_tensors([([[1.0, 2.0], [3.0]], [0, 1])], _tiny()[1]),
        "stage 0: X and y must be numeric"),
    api("from_tensors/strings", lambda c: lambda: Curriculum.from_tensors([(np.array([["a", "b"]]), [0])], _tiny()[1]),
        "stage 0: X and y must be numeric"),
    api("from_tensors/complex", lambda c: lambda: Curriculum.from_tensors(
        [(torch.randn(4, 3, dtype=torch.complex64), torch.zeros(4, dtype=torch.long))], _tiny()[1]), "complex values"),
    api("from_tensors/unknown-layout", lambda c: lambda: Curriculum.from_tensors(*_tiny(), layout="video"),
        "unknown layout 'video'", True),
    api("from_scores/n-stages-above-n", lambda c: lambda: Curriculum.from_scores(*_scores_data(10), n_stages=20),
        "does not fit"),
    api("from_scores/n-stages-zero", lambda c: lambda: Curriculum.from_scores(*_scores_data(10), n_stages=0),
        "n_stages must be a positive integer"),
    api("from_scores/nan-scores", lambda c: lambda: Curriculum.from_scores(
        *_scores_data(10)[:2], torch.tensor([float("nan")] * 10)), "scores contain NaN or inf"),
    api("from_scores/short-scores", lambda c: lambda: Curriculum.from_scores(*_scores_data(10)[:2], torch.rand(7)),
        "scores has 7 entries"),
    api("from_scores/mismatched-xy", lambda c: lambda: Curriculum.from_scores(
        torch.randn(10, 4), torch.zeros(9, dtype=torch.long), torch.rand(10)), "X has 10 rows but y has 9"),
    api("from_scores/bad-overlap", lambda c: lambda: Curriculum.from_scores(*_scores_data(10), overlap=1.5),
        "overlap must be in [0, 1)"),
    api("load_controller/unknown", lambda c: lambda: metacurr.load_controller("heurstic"), "unknown controller", True),
    api("load_controller/unknown-kwarg", lambda c: lambda: metacurr.load_controller("heuristic", alpah=1),
        "unknown parameter 'alpah'", True),
    api("load_controller/empty-policy-path", lambda c: lambda: metacurr.load_controller("policy:"), "needs a path"),
    api("load_controller/missing-bundle", lambda c: lambda: metacurr.load_controller(f"policy:{c.tmp / 'nope'}"),
        "policy bundle not found"),
    api("load_controller/garbage-weights", lambda c: lambda: metacurr.load_controller(f"policy:{c.bundle('garbage-weights')}"),
        "cannot read policy.pt"),
    api("load_controller/list-manifest", lambda c: lambda: metacurr.load_controller(f"policy:{c.bundle('list-manifest')}"),
        "manifest.json"),
    api("load_controller/wrong-normaliser",
        lambda c: lambda: metacurr.load_controller(f"policy:{c.bundle('wrong-normaliser')}"), "normalizer.npz"),
    api("make_plan/seed-below-10000", lambda c: _plan_with_seeds([5]), "evaluation seeds must be >= 10000"),
]

CASES += extra_cases(cli, api, sys.modules[__name__])


def _plan_with_seeds(seeds):
    from metacurr.evaluation.plan import make_plan
    from metacurr.evaluation.specs import parse_controllers
    from metacurr.evaluation.task_sets import parse_tasks

    return lambda: make_plan(parse_controllers("uniform"), parse_tasks("quick")[1], seeds)


# --------------------------------------------------------------------------- checks


def _snapshot(folder: Path) -> dict:
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): (p.is_dir(), p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def _run_in_process(argv: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse usage errors
        code = e.code
    return code, capsys.readouterr().err


def _check_message(err: str, case: Case) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"{case.id}: expected one stderr line, got {err!r}"
    assert "Traceback" not in err
    assert case.fragment in lines[0], f"{case.id}: {case.fragment!r} not in {lines[0]!r}"
    if case.choices:
        assert "valid choices" in lines[0], f"{case.id}: no 'valid choices' in {lines[0]!r}"


def test_case_count():
    assert len(CASES) == 201  # the table's rows (bad_input_rows.py holds 61 of them)
    assert len({c.id for c in CASES}) == len(CASES)
    commands = {c.id.split("/")[0] for c in CASES if c.kind == "cli"}
    assert {"train", "train-agent", "evaluate", "sweep", "agent", "sweep-run", "list"} <= commands


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, bundles, tmp_path, capsys, monkeypatch):
    ctx = Ctx(tmp_path, tmp_path / "out", bundles)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # default output folders (runs/...) would land here
    if case.kind == "api":
        call = case.make(ctx)
        with pytest.raises(ConfigError) as exc:
            call()
        msg = str(exc.value)
        _check_message(msg, case)
        assert not ctx.out.exists() and not any(cwd.iterdir())
        return

    argv = case.make(ctx)
    # 1. --out does not exist: it must not be created
    code, err = _run_in_process(argv, capsys)
    assert code == 2, f"{case.id}: exit code {code}, stderr {err!r}"
    _check_message(err, case)
    assert not ctx.out.exists(), f"{case.id}: {ctx.out} was created"
    assert not any(cwd.iterdir()), f"{case.id}: wrote {list(cwd.iterdir())}"
    # 2. --out exists with a marker: it must stay byte-for-byte unchanged
    ctx.out.mkdir()
    (ctx.out / "marker.txt").write_text("keep me")
    before = _snapshot(ctx.out)
    code, err = _run_in_process(argv, capsys)
    assert code == 2 and _snapshot(ctx.out) == before, f"{case.id}: --out changed"
    _check_message(err, case)
    shutil.rmtree(ctx.out)
    # 3. end to end, as a user runs it
    if case.sub:
        env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
        r = subprocess.run([sys.executable, "-m", "metacurr.cli", *argv], capture_output=True, text=True, timeout=120,
                           env=env, cwd=cwd)
        assert r.returncode == 2, f"{case.id}: subprocess exit {r.returncode}: {r.stderr[-500:]}"
        _check_message(r.stderr, case)
        assert r.stdout == ""
        assert not ctx.out.exists() and not any(cwd.iterdir())
