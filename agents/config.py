"""Typed configuration of controller-agent training (``metacurr train-agent --config FILE.yaml``)."""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass, field

from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from metacurr.agents.equivariant_policy import StageEquivariantPolicy, check_equivariant_kwargs, layout_kwargs
from metacurr.agents.policy_controller import ACTIVATIONS
from metacurr.config import from_dict, load_yaml, merge, to_dict
from metacurr.envs.observation import ObservationSpec
from metacurr.envs.rebalance import RebalanceEnv
from metacurr.envs.task_distribution import get_distribution
from metacurr.envs.vec import task_groups
from metacurr.errors import ConfigError, choices_error
from metacurr.evaluation.task_sets import HELDOUT_SETS, TASK_SETS, get_task_set
from metacurr.seeds import EVAL_SEED_BASE
from metacurr.validation import check_finite, check_limit, check_threads
from metacurr.weights import WeightMapping

VEC_ENVS = ("dummy", "subproc", "batched", "grouped")
#: Policy networks: ``mlp`` (SB3's MlpPolicy over the padded vector, VecNormalize per entry) or
#: ``equivariant`` (`metacurr.agents.equivariant_policy`: one shared network per stage, any stage count,
#: normaliser per feature inside the policy).
POLICIES = ("mlp", "equivariant")


@dataclass(frozen=True)
class EnvConfig:
    """The training environment (see `metacurr.envs.rebalance.RebalanceEnv`)."""

    distribution: str = "default"
    """Training task distribution (`metacurr.envs.task_distribution.DISTRIBUTIONS`)."""
    max_stages: int = 8
    """Observation / action stage slots: the policy serves curricula of up to this many stages."""
    control_steps: int = 20
    """Control steps per episode."""
    inner_steps: int = 10
    """Inner optimiser steps per control step."""
    reward: str = "val_loss"
    """val_loss or val_acc (potential-based improvement)."""
    mapping: dict = field(default_factory=dict)
    """WeightMapping fields: eta, smoothing, max_step, floor."""
    monitor: dict = field(default_factory=dict)
    """MonitorConfig fields."""
    divergence_penalty: float = 1.0
    """Reward on a diverging step."""
    hide_features: list = field(default_factory=list)
    """Indicators the policy never sees (reported as 0; feature ablations such as ``[grad_align]``)."""
    observation_version: int = 2
    """Observation layout: 2 (absolute indicators) or 3 (relative to the run itself, scale-free;
    `metacurr.envs.relative_observation`; any vec_env)."""
    device: str = "cpu"
    """Torch device of the inner runs (cpu, cuda, cuda:N). With ``vec_env: batched`` on a GPU the N
    inner models train as one program on the accelerator; the PPO learner itself stays on the CPU."""

    def env_kwargs(self) -> dict:
        return {
            "distribution": self.distribution,
            "max_stages": self.max_stages,
            "control_steps": self.control_steps,
            "inner_steps": self.inner_steps,
            "reward": self.reward,
            "mapping": dict(self.mapping),
            "monitor": dict(self.monitor),
            "divergence_penalty": self.divergence_penalty,
            "device": self.device,
            "hide_features": self.hide_features if isinstance(self.hide_features, str) else list(self.hide_features),
            "observation_version": self.observation_version,
        }


@dataclass(frozen=True)
class TrainConfig:
    """The PPO training loop."""

    total_timesteps: int = 20_000
    """Environment steps (control steps) to train for."""
    n_envs: int = 4
    """Parallel environments."""
    vec_env: str = "subproc"
    """dummy (one process), subproc (one process per env), batched (N inner models in one program) or
    grouped (one batched program per (family, arch, stage count) of the distribution, n_envs split evenly:
    trains across architectures and stage counts at batched speed; `metacurr.envs.vec`)."""
    seed: int = 0
    """Agent-training seed (must be < 10000: evaluation seeds are disjoint)."""
    checkpoint_every: int = 2_000
    """Save a resumable checkpoint every this many timesteps."""
    eval_every: int = 0
    """Evaluate the policy against `heuristic` every this many timesteps (0 = off). Logged only; never
    used to select a checkpoint. Sweeps optimise it, so it runs on training seeds and never on a
    held-out task set."""
    eval_tasks: str = "validation"
    """Task set of the periodic evaluation: ``validation`` or ``in-distribution`` (held-out sets are refused)."""
    eval_seeds: int = 2
    """Seeds per eval task."""
    threads: int = 1
    """Torch threads of the learner process (env subprocesses always use 1)."""
    batched_processes: int = 1
    """``vec_env: batched`` only: worker processes the N inner runs are split over (1: this process,
    worker threads). Slot i is the same run either way; on 2 cores 2 processes stepped faster than one
    for MLP, CNN and transformer tasks and about as fast for the GRU; for the transformer
    ``vec_env: subproc`` is faster than either, and for the CNN 2 processes ran at 1.9x it
    (``benchmarks/README.md``)."""
    group_processes: bool = False
    """``vec_env: grouped`` only: run each (family, arch, stage count) group in its own worker process
    (spawned, one torch thread) so the groups step in parallel across cores; slot i is the same run
    either way (tested). ``benchmarks/mixed_rates.py`` measures it against ``SubprocVecEnv``."""
    batched_compile: bool = False
    """``vec_env: batched`` only: run each inner step (forward, backward, clipping, optimiser) and the
    probe pass as ``torch.compile``d programs. Needs a C++ compiler; compiles per process at the start
    (with a cold inductor cache ~25 s for the default MLP task, ~40 s GRU; ~1 s from the cache); results
    equal the eager batched env's up to float rounding, not bit for bit. Measured as fast as eager or
    faster for every architecture with ``batched_processes: 2`` (``benchmarks/README.md``)."""


@dataclass(frozen=True)
class AgentConfig:
    """Everything `train-agent` needs."""

    name: str = "agent"
    env: EnvConfig = field(default_factory=EnvConfig)
    policy: str = "mlp"
    """``mlp`` or ``equivariant`` (`POLICIES`). The equivariant policy's ``ppo.policy_kwargs``: hidden
    (width, 64), fallback (none / shrink), fallback_z ([a, b]), activation_fn, log_std_init, ortho_init."""
    ppo: dict = field(default_factory=dict)
    """Keyword arguments of stable_baselines3.PPO (learning_rate, n_steps, batch_size, gamma, ent_coef,
    policy_kwargs: {net_arch: [64, 64]}, ...)."""
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return to_dict(self)


#: PPO defaults tuned for short episodes of 20 control steps.
PPO_DEFAULTS = {
    "learning_rate": 3e-4,
    "n_steps": 128,
    "batch_size": 128,
    "n_epochs": 10,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "ent_coef": 0.0,
    "clip_range": 0.2,
    "policy_kwargs": {"net_arch": [64, 64]},
}

_PPO_FORBIDDEN = {"policy", "env", "tensorboard_log", "seed", "device", "verbose", "_init_setup_model"}


def validate(cfg: AgentConfig) -> AgentConfig:
    get_distribution(cfg.env.distribution)
    if cfg.train.vec_env not in VEC_ENVS:
        raise choices_error("vec_env", cfg.train.vec_env, VEC_ENVS)
    if cfg.policy not in POLICIES:
        raise choices_error("policy", cfg.policy, POLICIES)
    if cfg.train.vec_env == "grouped":

        n_groups = len(task_groups(get_distribution(cfg.env.distribution)))
        if cfg.train.n_envs % n_groups:
            raise ConfigError(f"vec_env: grouped needs train.n_envs to be a multiple of the {n_groups} (family, arch, stage count) "
                              f"groups of distribution {cfg.env.distribution!r}, got {cfg.train.n_envs}")
    for k in ("total_timesteps", "n_envs", "checkpoint_every", "eval_seeds", "threads"):
        if getattr(cfg.train, k) <= 0:
            raise ConfigError(f"train.{k} must be positive, got {getattr(cfg.train, k)}")
    check_agent_ranges(cfg)
    if not isinstance(cfg.train.batched_processes, int) or isinstance(cfg.train.batched_processes, bool) or not (
        1 <= cfg.train.batched_processes <= cfg.train.n_envs
    ):
        raise ConfigError(f"train.batched_processes must be an integer in [1, n_envs={cfg.train.n_envs}], got {cfg.train.batched_processes!r}")
    if not isinstance(cfg.train.batched_compile, bool):
        raise ConfigError(f"train.batched_compile must be true or false, got {cfg.train.batched_compile!r}")
    if cfg.train.vec_env != "batched" and (cfg.train.batched_processes != 1 or cfg.train.batched_compile):
        raise ConfigError(f"train.batched_processes and train.batched_compile apply to vec_env: batched, not {cfg.train.vec_env}")
    if not isinstance(cfg.train.group_processes, bool):
        raise ConfigError(f"train.group_processes must be true or false, got {cfg.train.group_processes!r}")
    if cfg.train.group_processes and cfg.train.vec_env != "grouped":
        raise ConfigError(f"train.group_processes applies to vec_env: grouped, not {cfg.train.vec_env}")
    if cfg.train.eval_every < 0:
        raise ConfigError(f"train.eval_every must be >= 0, got {cfg.train.eval_every}")
    if not (0 <= cfg.train.seed < EVAL_SEED_BASE):
        raise ConfigError(f"train.seed must be in [0, {EVAL_SEED_BASE}) (evaluation seeds start at {EVAL_SEED_BASE}), got {cfg.train.seed}")
    if cfg.env.control_steps <= 0 or cfg.env.inner_steps <= 0:
        raise ConfigError("env.control_steps and env.inner_steps must be positive")
    valid = [p for p in inspect.signature(PPO.__init__).parameters if p not in _PPO_FORBIDDEN | {"self"}]
    for k in cfg.ppo:
        if k not in valid:
            raise ConfigError(f"unknown key ppo.{k}; valid choices: {', '.join(valid)}")
    # Build the env once to validate mapping / monitor / reward / stage counts.

    RebalanceEnv(**cfg.env.env_kwargs())
    _deep_checks(cfg)
    return cfg


def check_agent_ranges(cfg: AgentConfig) -> None:
    """Resource bounds and PPO values SB3 itself accepts but cannot train with (`metacurr.validation`)."""
    for k in ("total_timesteps", "n_envs", "checkpoint_every", "eval_seeds"):
        check_limit(getattr(cfg.train, k), k, "train")
    check_threads(cfg.train.threads, "train.threads")
    for k in ("control_steps", "inner_steps"):
        check_limit(getattr(cfg.env, k), k, "env")
    kw = ppo_kwargs(cfg)
    for k in ("gamma", "gae_lambda"):
        if k in kw:
            check_finite(kw[k], f"ppo.{k}", 0.0, 1.0)
    pk = kw.get("policy_kwargs") or {}
    arch = pk.get("net_arch") if isinstance(pk, dict) else None
    if isinstance(arch, list | dict):  # other types: SB3's own check below names them
        layers = list(arch.values()) if isinstance(arch, dict) else [arch]
        for layer in layers:
            if not isinstance(layer, list) or not all(isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 4096
                                                      for n in layer):
                raise ConfigError(f"ppo.policy_kwargs.net_arch must be a list of layer widths in [1, 4096] "
                                  f"(or {{pi: [...], vf: [...]}}), got {arch!r}")


def load_agent_config(path: str | None = None, overrides: dict | None = None) -> AgentConfig:
    """YAML (``safe_load``) + overrides -> validated AgentConfig."""
    data = load_yaml(path) if path else {}
    if overrides:
        data = merge(data, overrides)
    return validate(from_dict(AgentConfig, data, "config"))


def ppo_kwargs(cfg: AgentConfig) -> dict:
    kw = merge(PPO_DEFAULTS, dict(cfg.ppo))
    return kw


def _deep_checks(cfg: AgentConfig) -> None:
    """Checks training would otherwise only hit after writing into the run folder."""
    try:  # env.max_stages: 0 would otherwise silently mean "the distribution's largest stage count"
        ObservationSpec(max_stages=cfg.env.max_stages, hidden=tuple(cfg.env.hide_features), version=cfg.env.observation_version)
    except ConfigError as e:
        raise ConfigError(f"config.env.{e}") from None
    pk = ppo_kwargs(cfg).get("policy_kwargs") or {}
    if not isinstance(pk, dict):
        raise ConfigError(f"ppo.policy_kwargs must be a mapping, got {type(pk).__name__}")
    act = pk.get("activation_fn", "tanh")
    if not isinstance(act, str) or act not in ACTIVATIONS:
        raise ConfigError(f"unknown ppo.policy_kwargs.activation_fn {act!r}; valid choices: {', '.join(ACTIVATIONS)}")
    if cfg.policy == "equivariant":
        check_equivariant_kwargs(pk)

    get_task_set(cfg.train.eval_tasks)  # a typo fails now, not at the first periodic evaluation
    if cfg.train.eval_tasks in HELDOUT_SETS:
        allowed = [t for t in TASK_SETS if t not in HELDOUT_SETS]
        raise ConfigError(f"train.eval_tasks {cfg.train.eval_tasks!r} is a held-out task set: the periodic evaluation feeds "
                          f"sweeps, which must not tune on held-out tasks; valid choices: {', '.join(allowed)}")
    _check_ppo(cfg)


def policy_args(cfg: AgentConfig) -> tuple:
    """(SB3 policy class or name, policy_kwargs with the activation resolved to its class)."""
    pk = dict(ppo_kwargs(cfg).get("policy_kwargs") or {})
    pk["activation_fn"] = ACTIVATIONS[pk.get("activation_fn", "tanh")]
    if cfg.policy == "mlp":
        return "MlpPolicy", pk
    spec = ObservationSpec(max_stages=cfg.env.max_stages, hidden=tuple(cfg.env.hide_features), version=cfg.env.observation_version)
    pk.pop("net_arch", None)
    return StageEquivariantPolicy, {**pk, **layout_kwargs(spec, WeightMapping(**cfg.env.mapping))}


def _check_ppo(cfg) -> None:
    """Build the PPO model once on throw-away envs (no data is loaded): SB3 checks its own arguments
    (n_steps, batch_size, learning_rate, net_arch, ...) with asserts and TypeErrors deep inside."""
    kw = {k: v for k, v in ppo_kwargs(cfg).items() if k != "policy_kwargs"}
    kwargs = cfg.env.env_kwargs()
    venv = DummyVecEnv([lambda: RebalanceEnv(**kwargs)] * cfg.train.n_envs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            policy, policy_kwargs = policy_args(cfg)
            PPO(policy, venv, device="cpu", verbose=0, policy_kwargs=policy_kwargs, **kw)
    except ConfigError:
        raise
    except Exception as e:  # AssertionError, TypeError, ValueError from SB3 / torch
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise ConfigError(f"invalid ppo settings: {msg}") from None
    finally:
        venv.close()
