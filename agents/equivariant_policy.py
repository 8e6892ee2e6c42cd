"""A stage-equivariant actor-critic: one shared network scores every stage, any stage count.

The observation is the env's padded layout ``[globals (G), stage slots (M x F), mask (M)]``
(`metacurr.envs.observation.ObservationSpec`). The policy reads it as a *set* of real stages:

* **normaliser** (inside the policy, saved with its weights): running mean / variance per *feature*,
  shared by all stages (per-stage features pooled over the real stages, padded slots never counted),
  so a stage slot the training data never filled normalises like every other.
* **stage encoder** ``phi``: each stage's normalised features, its relative position ``k / (S - 1)``
  (0 for a single stage) and the normalised globals -> a hidden vector (the same weights for every stage).
* **context**: mean and max of the hidden vectors over the real stages.
* **actor** ``psi``: (stage's hidden vector, context) -> that stage's action mean; one log-std shared by
  all stages; padded slots neither act nor count in log-probabilities and entropies.
* **critic**: (context, normalised globals) -> value.

Permuting the stages (features and positions together) permutes the actions, and one set of weights
serves any stage count: the slot count is read from the observation's length.

**Fallback toward uniform** (``fallback="shrink"``): an out-of-support score — the root mean square of
the normalised entries of the state — is compared with its running distribution over the training
states; the action is blended toward the move that returns the weights to uniform by
``lam = clip((score - mean - a sd) / ((b - a) sd), 0, 1)`` with ``(a, b) = fallback_z``. The relative
weight mapping's move to uniform is ``-log(S w) / eta``; the absolute mapping's is a zero action.

The normaliser is updated between PPO iterations by `StageNormalizerCallback` (each rollout's
observations are folded in just before the next rollout), so a rollout and the PPO epochs on it use
the same statistics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import DiagGaussianDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from metacurr.errors import ConfigError

FALLBACKS = ("none", "shrink")
WEIGHT_FEATURE_KINDS = ("share", "log_ratio")
#: Keys of `StageEquivariantPolicy.normalizer_state` (what a bundle's normalizer.npz holds for this policy).
NORMALIZER_STATE_KEYS = ("global_mean", "global_var", "count", "stage_mean", "stage_var", "stage_count",
                         "score_mean", "score_var", "score_count")


class MaskedDiagGaussian(DiagGaussianDistribution):
    """Diagonal Gaussian whose log-probability and entropy sum over the real stages only."""

    def proba_distribution(self, mean_actions: torch.Tensor, log_std: torch.Tensor, mask: torch.Tensor | None = None):
        super().proba_distribution(mean_actions, log_std)
        self.mask = torch.ones_like(mean_actions) if mask is None else mask
        return self

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        return (self.distribution.log_prob(actions) * self.mask).sum(dim=1)

    def entropy(self) -> torch.Tensor:
        return (self.distribution.entropy() * self.mask).sum(dim=1)


def _mlp(sizes: list[int], act: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def check_equivariant_kwargs(kw: dict) -> None:
    """ConfigError for a bad ``hidden`` / ``fallback`` / ``fallback_z`` (the config's own checks)."""
    h = kw.get("hidden", 64)
    if isinstance(h, bool) or not isinstance(h, int) or h < 1:
        raise ConfigError(f"policy hidden must be a positive integer, got {h!r}")
    if kw.get("fallback", "none") not in FALLBACKS:
        raise ConfigError(f"unknown policy fallback {kw.get('fallback')!r}; valid choices: {', '.join(FALLBACKS)}")
    z = kw.get("fallback_z", (2.0, 4.0))
    if (not isinstance(z, (list, tuple)) or len(z) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in z)
            or not z[0] < z[1]):
        raise ConfigError(f"policy fallback_z must be two numbers a < b, got {z!r}")


class StageEquivariantPolicy(ActorCriticPolicy):
    """SB3 actor-critic over a set of stages (see the module docstring).

    Args:
        observation_space, action_space, lr_schedule: as for SB3's ``ActorCriticPolicy``.
        n_globals: global features G at the front of the observation.
        n_stage_features: per-stage features F.
        hidden: width of the stage encoder, actor and critic.
        weight_index: index of the stage's weight among the per-stage features (for the fallback).
        weight_kind: ``"share"`` (the weight itself) or ``"log_ratio"`` (``log(S w)``).
        mapping_mode: the weight mapping's mode (``relative`` / ``absolute``) and ``eta``: what move
            returns the weights to uniform.
        fallback: ``"none"`` or ``"shrink"`` (blend toward uniform when the state is out of support).
        fallback_z: (a, b) of the fallback blend, in standard deviations of the training states' score.
        clip_obs: normalised features are clipped to +-clip_obs.
        activation_fn, ortho_init, log_std_init, optimizer_class, optimizer_kwargs: as for SB3.
    """

    def __init__(
        self,
        observation_space,
        action_space,
        lr_schedule,
        n_globals: int = 5,
        n_stage_features: int = 13,
        hidden: int = 64,
        weight_index: int = 0,
        weight_kind: str = "share",
        mapping_mode: str = "relative",
        eta: float = 1.0,
        fallback: str = "none",
        fallback_z: tuple[float, float] | list[float] = (2.0, 4.0),
        clip_obs: float = 10.0,
        activation_fn: type[nn.Module] = nn.Tanh,
        **kwargs: Any,
    ):
        check_equivariant_kwargs({"hidden": hidden, "fallback": fallback, "fallback_z": fallback_z})
        if weight_kind not in WEIGHT_FEATURE_KINDS:
            raise ConfigError(f"unknown weight_kind {weight_kind!r}; valid choices: {', '.join(WEIGHT_FEATURE_KINDS)}")
        # Read by _build, which SB3's constructor calls.
        self.n_globals, self.n_stage_features, self.hidden = int(n_globals), int(n_stage_features), int(hidden)
        self.weight_index, self.weight_kind = int(weight_index), weight_kind
        self.mapping_mode, self.eta = mapping_mode, float(eta)
        self.fallback, self.fallback_z = fallback, (float(fallback_z[0]), float(fallback_z[1]))
        self.clip_obs = float(clip_obs)
        kwargs.pop("net_arch", None)
        super().__init__(observation_space, action_space, lr_schedule, activation_fn=activation_fn, **kwargs)
        self.action_dist = MaskedDiagGaussian(int(np.prod(action_space.shape)))

    # -- construction -------------------------------------------------------------------------------
    def _build(self, lr_schedule) -> None:
        g, f, h, act = self.n_globals, self.n_stage_features, self.hidden, self.activation_fn
        self.phi = _mlp([f + 1 + g, h, h], act)
        self.act_phi = act()
        self.psi = _mlp([3 * h, h, 1], act)
        self.critic = _mlp([2 * h + g, h, 1], act)
        self.log_std = nn.Parameter(torch.full((1,), float(self.log_std_init)))
        dt = torch.float64
        self.register_buffer("global_mean", torch.zeros(g, dtype=dt))
        self.register_buffer("global_var", torch.ones(g, dtype=dt))
        self.register_buffer("stage_mean", torch.zeros(f, dtype=dt))
        self.register_buffer("stage_var", torch.ones(f, dtype=dt))
        self.register_buffer("count", torch.tensor(1e-4, dtype=dt))
        self.register_buffer("stage_count", torch.tensor(1e-4, dtype=dt))
        self.register_buffer("score_mean", torch.tensor(1.0, dtype=dt))
        self.register_buffer("score_var", torch.tensor(1.0, dtype=dt))
        self.register_buffer("score_count", torch.tensor(0.0, dtype=dt))
        if self.ortho_init:
            for net, last_gain in ((self.phi, np.sqrt(2)), (self.psi, 0.01), (self.critic, 1.0)):
                linears = [m for m in net if isinstance(m, nn.Linear)]
                for m in linears:
                    nn.init.orthogonal_(m.weight, gain=last_gain if m is linears[-1] else np.sqrt(2))
                    nn.init.zeros_(m.bias)
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.pop("net_arch", None)
        data.update(n_globals=self.n_globals, n_stage_features=self.n_stage_features, hidden=self.hidden,
                    weight_index=self.weight_index, weight_kind=self.weight_kind, mapping_mode=self.mapping_mode,
                    eta=self.eta, fallback=self.fallback, fallback_z=list(self.fallback_z), clip_obs=self.clip_obs)
        return data

    # -- observation handling -----------------------------------------------------------------------
    def split(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw observation (B, G + M (F + 1)) -> globals (B, G), stages (B, M, F), mask (B, M)."""
        g, f = self.n_globals, self.n_stage_features
        d = obs.shape[1]
        if (d - g) % (f + 1) != 0 or d <= g:
            raise ConfigError(f"observation of length {d} does not fit {g} globals and stage slots of {f} features + mask")
        m = (d - g) // (f + 1)
        return obs[:, :g], obs[:, g:g + m * f].reshape(-1, m, f), obs[:, g + m * f:]

    def _normalise(self, obs: torch.Tensor):
        glob, stage, mask = self.split(obs.to(torch.float64))
        eps = 1e-8
        gz = ((glob - self.global_mean) / torch.sqrt(self.global_var + eps)).clamp(-self.clip_obs, self.clip_obs)
        sz = ((stage - self.stage_mean) / torch.sqrt(self.stage_var + eps)).clamp(-self.clip_obs, self.clip_obs)
        return gz, sz * mask[..., None], mask, glob, stage

    def _score(self, gz: torch.Tensor, sz: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Out-of-support score per state: RMS of the normalised entries over the globals and real stages."""
        n = self.n_globals + mask.sum(1) * self.n_stage_features
        return torch.sqrt(((gz ** 2).sum(1) + (sz ** 2).sum((1, 2))) / n.clamp(min=1.0))

    @torch.no_grad()
    def update_normalizer(self, obs: np.ndarray | torch.Tensor) -> None:
        """Fold a batch of raw observations (B, D) into the per-feature statistics and the score's."""
        obs = torch.as_tensor(np.asarray(obs), dtype=torch.float64, device=self.global_mean.device).reshape(-1, self.observation_space.shape[0])
        glob, stage, mask = self.split(obs)
        rows = stage[mask > 0.5]
        _merge(self.global_mean, self.global_var, self.count, glob)
        self.count += float(glob.shape[0])
        if rows.shape[0]:
            _merge(self.stage_mean, self.stage_var, self.stage_count, rows)
            self.stage_count += float(rows.shape[0])
        gz, sz, mask, _, _ = self._normalise(obs)
        score = self._score(gz, sz, mask)
        _merge(self.score_mean, self.score_var, self.score_count, score)
        self.score_count += float(score.shape[0])

    def normalizer_state(self) -> dict[str, np.ndarray]:
        """The normaliser's statistics as numpy arrays (`NORMALIZER_STATE_KEYS`)."""
        return {k: getattr(self, k).detach().cpu().numpy().copy() for k in NORMALIZER_STATE_KEYS}

    def load_normalizer_state(self, state: dict) -> None:
        """Inverse of `normalizer_state`; ConfigError if a key is missing or a shape differs."""
        for k in NORMALIZER_STATE_KEYS:
            if k not in state:
                raise ConfigError(f"normaliser state lacks {k}")
            buf = getattr(self, k)
            v = torch.as_tensor(np.asarray(state[k]), dtype=buf.dtype)
            if v.shape != buf.shape:
                raise ConfigError(f"normaliser {k} has shape {tuple(v.shape)}, the policy needs {tuple(buf.shape)}")
            buf.copy_(v)

    # -- networks -----------------------------------------------------------------------------------
    def _heads(self, obs: torch.Tensor, positions: torch.Tensor | None = None):
        """(action means (B, M) with padded slots 0, values (B, 1), mask (B, M), fallback blend (B,)).

        ``positions`` (B, M): each slot's relative position; default ``k / (S - 1)`` for slot k of S real
        stages (0 for one stage). Given explicitly, the network is a function of the set of (stage
        features, position) pairs: permuting both permutes the actions.
        """
        gz, sz, mask, _, stage = self._normalise(obs)
        b, m, _ = sz.shape
        n = mask.sum(1, keepdim=True)
        if positions is None:
            k = torch.arange(m, dtype=torch.float64, device=obs.device)[None, :].expand(b, m)
            pos = torch.where(n > 1, k / (n - 1).clamp(min=1.0), torch.zeros_like(k))
        else:
            pos = positions.to(torch.float64)
        x = torch.cat([sz, pos[..., None], gz[:, None, :].expand(b, m, gz.shape[1])], dim=2).float()
        h = self.act_phi(self.phi(x))  # (B, M, H)
        mk = mask[..., None].float()
        mean_h = (h * mk).sum(1) / n.float().clamp(min=1.0)
        max_h = torch.where(mk > 0, h, torch.full_like(h, -1e4)).max(1).values
        max_h = torch.where(n > 0, max_h, torch.zeros_like(max_h))
        ctx = torch.cat([mean_h, max_h], dim=1)
        a = self.psi(torch.cat([h, ctx[:, None, :].expand(b, m, ctx.shape[1])], dim=2)).squeeze(-1)
        values = self.critic(torch.cat([ctx, gz.float()], dim=1))
        lam = torch.zeros(b, device=obs.device)
        if self.fallback == "shrink" and float(self.score_count) > 0:
            sd = torch.sqrt(self.score_var).clamp(min=1e-6)
            lo, hi = self.fallback_z
            lam = ((self._score(gz, sz, mask) - self.score_mean - lo * sd) / ((hi - lo) * sd)).clamp(0.0, 1.0).float()
            a = (1 - lam[:, None]) * a + lam[:, None] * self._to_uniform(stage, n).float()
        return a * mask.float(), values, mask.float(), lam

    def _to_uniform(self, stage: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        """The action that moves the weights back to uniform under the training mapping."""
        if self.mapping_mode == "absolute":
            return torch.zeros(stage.shape[:2], dtype=stage.dtype, device=stage.device)
        w = stage[..., self.weight_index]
        log_ratio = w if self.weight_kind == "log_ratio" else torch.log(torch.clamp(n * w, min=1e-8))
        return (-log_ratio / self.eta).clamp(-1.0, 1.0)

    def _dist(self, mean: torch.Tensor, mask: torch.Tensor) -> MaskedDiagGaussian:
        return self.action_dist.proba_distribution(mean, self.log_std, mask)

    def forward(self, obs: torch.Tensor, deterministic: bool = False):
        mean, values, mask, _ = self._heads(obs)
        dist = self._dist(mean, mask)
        actions = dist.get_actions(deterministic=deterministic)
        return actions, values, dist.log_prob(actions)

    def evaluate_actions(self, obs: torch.Tensor, actions: torch.Tensor):
        mean, values, mask, _ = self._heads(obs)
        dist = self._dist(mean, mask)
        return values, dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs: torch.Tensor):
        mean, _, mask, _ = self._heads(obs)
        return self._dist(mean, mask)

    def predict_values(self, obs: torch.Tensor) -> torch.Tensor:
        return self._heads(obs)[1]

    @torch.no_grad()
    def deterministic_action(self, obs: np.ndarray, positions: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw observations (B, D) with any slot count -> (actions (B, M) in [-1, 1], fallback blend (B,)).

        ``positions``: explicit relative positions (B, M) instead of ``k / (S - 1)`` (see `_heads`).
        """
        t = torch.as_tensor(np.asarray(obs, dtype=np.float32)).reshape(-1, np.asarray(obs).shape[-1])
        pos = None if positions is None else torch.as_tensor(np.asarray(positions, dtype=np.float64)).reshape(t.shape[0], -1)
        mean, _, _, lam = self._heads(t, pos)
        return mean.clamp(-1.0, 1.0).double().numpy(), lam.double().numpy()


def _merge(mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor, x: torch.Tensor) -> None:
    """Parallel (Chan et al.) merge of a batch ``x`` (N, K) into running (mean, var, count), in place
    (count itself is left to the caller)."""
    bm, bv, bn = x.mean(0), x.var(0, unbiased=False), float(x.shape[0])
    tot = count + bn
    delta = bm - mean
    new_mean = mean + delta * bn / tot
    m2 = var * count + bv * bn + delta ** 2 * count * bn / tot
    mean.copy_(new_mean)
    var.copy_(m2 / tot)


class StageNormalizerCallback(BaseCallback):
    """Folds each rollout's observations into the policy's normaliser just before the next rollout.

    Updating between iterations (not during one) keeps a rollout and the PPO epochs that train on it
    on the same statistics, so PPO's probability ratios start at 1. The first rollout sees the initial
    statistics (mean 0, variance 1); the last rollout's observations are never folded in, so the saved
    policy normalises exactly as it did in its last update.
    """

    def __init__(self):
        super().__init__()
        self.pending: np.ndarray | None = None

    def _on_rollout_start(self) -> None:
        if self.pending is not None:
            self.model.policy.update_normalizer(self.pending)
            self.pending = None

    def _on_rollout_end(self) -> None:
        obs = self.model.rollout_buffer.observations
        self.pending = np.asarray(obs, dtype=np.float64).reshape(-1, obs.shape[-1]).copy()

    def _on_step(self) -> bool:
        return True


def layout_kwargs(obs_spec, mapping) -> dict:
    """The policy kwargs that follow from an observation layout and a weight mapping."""
    sf = list(obs_spec.stage_features)
    if "log_weight" in sf:
        idx, kind = sf.index("log_weight"), "log_ratio"
    else:
        idx, kind = sf.index("weight"), "share"
    return {"n_globals": len(obs_spec.global_features), "n_stage_features": len(sf), "weight_index": idx,
            "weight_kind": kind, "mapping_mode": mapping.mode, "eta": float(mapping.eta)}
