"""PPO training of a rebalancing policy: `train_agent(cfg, out)`.

SB3 PPO on `RebalanceEnv` copies (``dummy`` / ``subproc`` / ``batched`` vector envs) with reward
normalisation (VecNormalize) and observation normalisation (VecNormalize per entry for the ``mlp``
policy; per feature inside the ``equivariant`` policy), periodic resumable checkpoints, resume, optional periodic
evaluation against ``heuristic``, a progress bar, TensorBoard, and a policy bundle at the end.

Interruption: SIGINT / SIGTERM write a checkpoint and return cleanly (``status="interrupted"``);
after a hard kill, ``resume=True`` continues from the last checkpoint, losing at most one interval.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import signal
import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecMonitor, VecNormalize
from tqdm import tqdm

from metacurr.agents.bundle import save_bundle
from metacurr.agents.checkpoints import Checkpointer, load_norm
from metacurr.agents.config import AgentConfig, policy_args, ppo_kwargs
from metacurr.agents.equivariant_policy import layout_kwargs
from metacurr.agents.policy_controller import PolicyController
from metacurr.agents.progress import planned_timesteps
from metacurr.config import RunConfig
from metacurr.controllers import make_controller
from metacurr.envs.observation import ObservationSpec
from metacurr.envs.rebalance import RebalanceEnv
from metacurr.envs.worker import init_worker_process
from metacurr.errors import ConfigError
from metacurr.evaluation.task_sets import task_specs
from metacurr.io import atomic_write_json, atomic_write_yaml
from metacurr.run import run_episode
from metacurr.seeds import TRAIN_SEED_MAX
from metacurr.weights import WeightMapping

log = logging.getLogger(__name__)


def _make_env(env_kwargs: dict, subprocess: bool):
    """Env factory (module level so SubprocVecEnv can pickle it)."""
    if subprocess:
        init_worker_process()  # 1 torch thread, SIGINT left to the learner (it checkpoints), allocator

    return RebalanceEnv(**env_kwargs)


def make_vec_env(cfg: AgentConfig, n_envs: int | None = None, kind: str | None = None):
    """The training vector env (not yet normalised).

    Layout-3 observations are computed from the envs' layout-2 rows by `RelativeObservationVecEnv`, so
    every kind of vector env serves both layouts.
    """
    n = n_envs or cfg.train.n_envs
    kind = kind or cfg.train.vec_env
    kw = cfg.env.env_kwargs()
    version = kw.pop("observation_version")
    if version != 2:
        kw["hide_features"] = []
    if kind == "batched":
        # Imported here, not at the top: dummy / subproc training never loads the batched engine.
        from metacurr.envs.batched import BatchedRebalanceVecEnv
        from metacurr.envs.sharded import ShardedBatchedVecEnv

        kw["compile"] = cfg.train.batched_compile
        procs = min(cfg.train.batched_processes, n)
        venv = ShardedBatchedVecEnv(n, processes=procs, **kw) if procs > 1 else BatchedRebalanceVecEnv(n_envs=n, **kw)
    elif kind == "grouped":
        from metacurr.envs.task_distribution import get_distribution
        from metacurr.envs.vec import grouped_batched_env

        kw["distribution"] = get_distribution(kw["distribution"])
        venv = grouped_batched_env(n, processes=cfg.train.group_processes, **kw)
    elif kind == "subproc" and n > 1:
        venv = SubprocVecEnv([functools.partial(_make_env, kw, True) for _ in range(n)], start_method="spawn")
    else:
        venv = DummyVecEnv([functools.partial(_make_env, kw, False) for _ in range(n)])
    if version != 2:
        from metacurr.envs.vec import RelativeObservationVecEnv

        v3 = _obs_spec(cfg)
        venv = RelativeObservationVecEnv(venv, v3.with_version(2), v3)
    return VecMonitor(venv)


def _obs_spec(cfg: AgentConfig) -> ObservationSpec:
    """The observation layout the agent's envs produce."""
    return ObservationSpec(max_stages=cfg.env.max_stages, hidden=tuple(cfg.env.hide_features), version=cfg.env.observation_version)


def controller_from_model(model, venv, cfg: AgentConfig, name: str = "policy"):
    """The in-memory policy as a PolicyController (used by the eval callback and to build bundles)."""
    if cfg.policy == "equivariant":
        return PolicyController(copy.deepcopy(model.policy).cpu(), _obs_spec(cfg), WeightMapping(**cfg.env.mapping), name=name)
    return PolicyController(
        copy.deepcopy(model.policy).cpu(),
        _obs_spec(cfg),
        WeightMapping(**cfg.env.mapping),
        venv.obs_rms.mean.copy(),
        venv.obs_rms.var.copy(),
        venv.clip_obs,
        venv.epsilon,
        name=name,
    )


def save_policy_bundle(out: Path, model, venv, cfg: AgentConfig, extra: dict | None = None) -> Path:
    pk = dict(ppo_kwargs(cfg).get("policy_kwargs") or {})
    if "activation_fn" in pk and not isinstance(pk["activation_fn"], str):
        raise ConfigError("policy_kwargs.activation_fn must be a name (tanh, relu)")
    obs_spec = _obs_spec(cfg)
    mapping = WeightMapping(**cfg.env.mapping)
    if cfg.policy == "equivariant":
        pk.pop("net_arch", None)
        pk.update(layout_kwargs(obs_spec, mapping))
        normalizer = {**model.policy.normalizer_state(), "clip": np.float64(model.policy.clip_obs), "epsilon": np.float64(1e-8)}
        stages = {"min": 1, "max": None, "handling": "one shared network per stage: any stage count"}
    else:
        pk.setdefault("net_arch", [64, 64])
        normalizer = {"mean": venv.obs_rms.mean, "var": venv.obs_rms.var, "clip": np.float64(venv.clip_obs),
                      "epsilon": np.float64(venv.epsilon)}
        stages = {"min": 1, "max": cfg.env.max_stages,
                  "handling": "padded to max_stages with a mask; actions beyond the curriculum's stages are ignored"}
    tmp_zip = out / ".model_for_bundle.zip"
    try:
        model.save(tmp_zip)
        manifest = {
            "policy_class": cfg.policy,
            "observation": obs_spec.to_dict(),
            "mapping": mapping.to_dict(),
            "n_stages": {"min": stages["min"], "max": stages["max"]},
            "stage_handling": stages["handling"],
            "policy_kwargs": pk,
            "training_config": cfg.to_dict(),
            **(extra or {}),
        }
        state = {k: v.detach().cpu() for k, v in model.policy.state_dict().items()}
        return save_bundle(out / "policy", policy_state=state, normalizer=normalizer, manifest=manifest,
                           model_zip=tmp_zip)
    finally:
        tmp_zip.unlink(missing_ok=True)  # also when the bundle cannot be written (a full disk)


def train_agent(
    cfg: AgentConfig,
    out: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    tracker=None,
) -> dict:
    """Train a PPO controller agent; return a summary dict (status, timesteps, wall_s, bundle path).

    Args:
        cfg: validated AgentConfig.
        out: run folder (config.yaml, checkpoints/, tb/, policy/, summary.json).
        resume: continue from ``out/checkpoints`` if there is one.
        progress: show a progress bar on stderr.
        tracker: optional `metacurr.tracking` tracker; receives eval/ metrics and the summary.
    """
    out = Path(out)
    ckpt = Checkpointer(out / "checkpoints")
    latest = None
    if resume:  # refusals come before anything is written
        ckpt.check_config(cfg.to_dict(), fallback=out / "config.yaml")
        latest = ckpt.latest()  # the newest complete checkpoint; damaged ones are skipped, never deleted
        if latest is None:
            log.warning("no checkpoint in %s; starting from scratch", out / "checkpoints")
    elif ckpt.any_files():
        ckpt.set_aside()
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(cfg.train.threads)
    ckpt.record_config(cfg.to_dict())
    atomic_write_yaml(out / "config.yaml", cfg.to_dict())

    kw = ppo_kwargs(cfg)
    venv = VecNormalize(make_vec_env(cfg), norm_obs=cfg.policy == "mlp", norm_reward=True, clip_obs=10.0,
                        gamma=kw["gamma"])
    if latest is not None:
        zip_path, norm_path, done = latest
        model = PPO.load(zip_path, env=venv, device="cpu", tensorboard_log=str(out / "tb"))
        load_norm(norm_path, venv)
    else:
        kw.pop("policy_kwargs", None)
        policy, policy_kwargs = policy_args(cfg)
        model = PPO(policy, venv, seed=cfg.train.seed, device="cpu", verbose=0,
                    tensorboard_log=str(out / "tb"), policy_kwargs=policy_kwargs, **kw)
        done = 0

    stop = {"signal": None}

    def on_signal(signum, frame):  # noqa: ARG001
        stop["signal"] = signum

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    total = cfg.train.total_timesteps
    t0 = time.perf_counter()
    steps_at_start = model.num_timesteps

    class Loop(BaseCallback):
        def _on_training_start(self) -> None:
            # SB3 stops after the rollout that reaches the total: the bar counts the steps it will do.
            planned = planned_timesteps(model.num_timesteps, total, model.n_steps * model.n_envs)
            self.bar = tqdm(total=planned, initial=model.num_timesteps, desc="PPO", unit="step", disable=not progress, leave=False)
            self.last_ckpt = model.num_timesteps
            self.last_eval = model.num_timesteps

        def _on_step(self) -> bool:
            self.bar.update(self.model.num_timesteps - self.bar.n)
            if self.model.num_timesteps - self.last_ckpt >= cfg.train.checkpoint_every:
                ckpt.save(self.model, venv)
                self.last_ckpt = self.model.num_timesteps
            if cfg.train.eval_every and self.model.num_timesteps - self.last_eval >= cfg.train.eval_every:
                self.last_eval = self.model.num_timesteps
                metrics = periodic_eval(self.model, venv, cfg)
                for k, v in metrics.items():
                    self.logger.record(k, v)
                if tracker is not None:
                    tracker.log(metrics, self.model.num_timesteps)
            return stop["signal"] is None

        def _on_training_end(self) -> None:
            self.bar.close()

    status = "finished"
    try:
        remaining = total - model.num_timesteps
        callbacks = [Loop()]
        if cfg.policy == "equivariant":
            from stable_baselines3.common.callbacks import CallbackList

            from metacurr.agents.equivariant_policy import StageNormalizerCallback

            callbacks = CallbackList([StageNormalizerCallback(), *callbacks])
        else:
            callbacks = callbacks[0]
        if remaining > 0:
            model.learn(total_timesteps=remaining, callback=callbacks, reset_num_timesteps=latest is None,
                        tb_log_name="ppo", progress_bar=False)
        if stop["signal"] is not None:
            status = "interrupted"
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)
    ckpt.save(model, venv)
    wall = time.perf_counter() - t0
    steps = model.num_timesteps - steps_at_start
    summary = {
        "status": status,
        "signal": stop["signal"],
        "timesteps": int(model.num_timesteps),
        "resumed_from": int(done) if latest is not None else None,
        "wall_s": wall,
        "env_steps_per_s": steps / wall if wall > 0 else None,
        "n_envs": cfg.train.n_envs,
        "vec_env": cfg.train.vec_env,
        "batched_processes": cfg.train.batched_processes,
        "batched_compile": cfg.train.batched_compile,
    }
    if status == "finished":
        summary["bundle"] = str(save_policy_bundle(out, model, venv, cfg, {"timesteps": int(model.num_timesteps)}))
        if tracker is not None and hasattr(tracker, "log_artifact"):
            tracker.log_artifact(out / "policy", name=f"{cfg.name}-policy", type="policy")
    atomic_write_json(out / "summary.json", summary)
    if tracker is not None:
        tracker.summary(summary)
    venv.close()
    return summary


def periodic_eval(model, venv, cfg: AgentConfig) -> dict:
    """Current policy vs heuristic on the tasks of the eval task set; eval/ metrics.

    Monitoring only: the result is logged, never used to select a checkpoint, and it runs on
    training-range seeds (TRAIN_SEED_MAX, TRAIN_SEED_MAX - 1, ...), so evaluation seeds stay untouched.
    """
    pol = controller_from_model(model, venv, cfg)
    res: dict[str, list[float]] = {"policy": [], "heuristic": []}
    budget = {"control_steps": cfg.env.control_steps, "inner_steps": cfg.env.inner_steps}
    for spec in task_specs(cfg.train.eval_tasks, **budget):
        if spec.n_stages > cfg.env.max_stages:
            continue
        for i in range(cfg.train.eval_seeds):
            s = dataclasses.replace(spec, seed=TRAIN_SEED_MAX - i)
            for name, ctrl in (("policy", pol), ("heuristic", make_controller("heuristic"))):
                summ, _ = run_episode(RunConfig(task=s, controller=name), ctrl)
                res[name].append(np.nan if summ["final_val_loss"] is None else summ["final_val_loss"])
    p, h = np.nanmean(res["policy"]), np.nanmean(res["heuristic"])
    return {"eval/policy_val_loss": float(p), "eval/heuristic_val_loss": float(h), "eval/policy_minus_heuristic": float(p - h)}


def train_unless_bundled(cfg: AgentConfig, run: str | Path, *, progress: bool = False) -> tuple[dict | None, float]:
    """Train the agent into ``run`` unless its bundle (``run/policy``) is already there; resume from
    ``run/checkpoints`` when a checkpoint exists (a study rerun picks up where it stopped).

    Returns:
        (`train_agent`'s summary, or None when the bundle already existed; seconds spent training).
    """
    run = Path(run)
    if (run / "policy" / "manifest.json").is_file():
        return None, 0.0
    t0 = time.perf_counter()
    res = train_agent(cfg, run, resume=(run / "checkpoints" / "latest.json").is_file(), progress=progress)
    return res, time.perf_counter() - t0
