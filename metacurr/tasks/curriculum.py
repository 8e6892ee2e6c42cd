"""The staged curriculum: training stages (easy -> hard), a target-distribution `val` set and a `shift` set.

A `Curriculum` only holds tensors; the task families in `metacurr.tasks` build one, and users can bring
their own with `Curriculum.from_tensors` or `Curriculum.from_scores`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from metacurr.errors import ConfigError
from metacurr.validation import check_classes

Pair = tuple[torch.Tensor, torch.Tensor]

#: How a model should read one example. "signal": (L,) 1-D signal; "image": (H, W); "sequence": (T, V) one-hot tokens.
LAYOUTS = ("signal", "image", "sequence")


def _as_pair(pair: object, where: str) -> Pair:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise ConfigError(f"{where} must be a pair (X, y)")
    x, y = pair
    try:
        x = torch.as_tensor(x)
        y = torch.as_tensor(y)
    except (TypeError, ValueError, RuntimeError) as e:  # strings, ragged lists, objects
        raise ConfigError(f"{where}: X and y must be numeric arrays or tensors ({str(e).splitlines()[0]})") from None
    if x.is_complex() or y.is_complex():
        raise ConfigError(f"{where}: complex values are not supported")
    if x.ndim < 2:
        raise ConfigError(f"{where}: X must have shape (N, ...) with at least 2 dims, got {tuple(x.shape)}")
    if y.ndim != 1:
        raise ConfigError(f"{where}: y must have shape (N,), got {tuple(y.shape)}")
    if len(x) != len(y):
        raise ConfigError(f"{where}: X has {len(x)} rows but y has {len(y)}")
    if len(x) == 0:
        raise ConfigError(f"{where}: empty (0 examples)")
    if not torch.is_floating_point(x):
        x = x.float()
    x = x.float()
    if not torch.isfinite(x).all():
        raise ConfigError(f"{where}: X contains NaN or inf")
    if y.dtype == torch.bool or x.shape[1:].numel() == 0:
        raise ConfigError(f"{where}: y must hold integer class labels and X at least one feature, "
                          f"got y {y.dtype}, X {tuple(x.shape)}")
    if torch.is_floating_point(y):
        if not torch.isfinite(y).all() or not torch.equal(y, y.round()):
            raise ConfigError(f"{where}: y must hold integer class labels")
    y = y.long()
    if (y < 0).any():
        raise ConfigError(f"{where}: y holds negative class labels")
    return x.contiguous(), y.contiguous()


@dataclass
class Curriculum:
    """Ordered training stages plus evaluation sets.

    Attributes:
        stages: training pairs (X, y) per stage, easiest first. All X share one per-example shape.
        val: target-distribution set; the reward and the controllers' global signals read it.
        shift: distribution-shift set never covered by the training stages (``None`` if unavailable).
        n_classes: number of classes.
        layout: how models read an example, one of ``LAYOUTS``.
        stage_names: human-readable stage names.
        stage_tests: optional clean held-out sets per stage, for per-stage accuracy; when ``None`` the
            per-stage probe subsets of the training data are used.
        name: a label for reports.
        meta: JSON-serialisable description of how the curriculum was built (difficulty parameters).
    """

    stages: list[Pair]
    val: Pair
    shift: Pair | None
    n_classes: int
    layout: str = "signal"
    stage_names: list[str] = field(default_factory=list)
    stage_tests: list[Pair] | None = None
    name: str = "custom"
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ConfigError(f"unknown layout {self.layout!r}; valid choices: {', '.join(LAYOUTS)}")
        if not self.stages:
            raise ConfigError("a curriculum needs at least one stage")
        self.stages = [_as_pair(p, f"stage {i}") for i, p in enumerate(self.stages)]
        self.val = _as_pair(self.val, "val")
        self.shift = None if self.shift is None else _as_pair(self.shift, "shift")
        if self.stage_tests is not None:
            if len(self.stage_tests) != len(self.stages):
                raise ConfigError(
                    f"stage_tests has {len(self.stage_tests)} sets for {len(self.stages)} stages"
                )
            self.stage_tests = [_as_pair(p, f"stage_tests {i}") for i, p in enumerate(self.stage_tests)]
        shape = self.input_shape
        sets = [("val", self.val)] + [(f"stage {i}", p) for i, p in enumerate(self.stages)]
        if self.shift is not None:
            sets.append(("shift", self.shift))
        for where, (x, y) in sets:
            if tuple(x.shape[1:]) != shape:
                raise ConfigError(f"{where}: examples have shape {tuple(x.shape[1:])}, stage 0 has {shape}")
            if int(y.max()) >= self.n_classes:
                raise ConfigError(f"{where}: label {int(y.max())} >= n_classes={self.n_classes}")
        if self.layout == "image" and len(shape) != 2:
            raise ConfigError(f"layout 'image' needs (H, W) examples, got {shape}")
        if self.layout == "sequence" and len(shape) != 2:
            raise ConfigError(f"layout 'sequence' needs (T, V) examples, got {shape}")
        if not self.stage_names:
            self.stage_names = [f"stage{i}" for i in range(len(self.stages))]
        if len(self.stage_names) != len(self.stages):
            raise ConfigError(f"{len(self.stage_names)} stage names for {len(self.stages)} stages")

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.stages[0][0].shape[1:])

    def to(self, device: torch.device | str) -> Curriculum:
        """Return a copy whose tensors live on ``device``."""

        def mv(p: Pair | None) -> Pair | None:
            return None if p is None else (p[0].to(device), p[1].to(device))

        return Curriculum(
            stages=[mv(p) for p in self.stages],
            val=mv(self.val),
            shift=mv(self.shift),
            n_classes=self.n_classes,
            layout=self.layout,
            stage_names=list(self.stage_names),
            stage_tests=None if self.stage_tests is None else [mv(p) for p in self.stage_tests],
            name=self.name,
            meta=dict(self.meta),
        )

    def describe(self) -> dict:
        """JSON-serialisable summary: sizes per stage, layout, classes, build parameters."""
        return {
            "name": self.name,
            "layout": self.layout,
            "input_shape": list(self.input_shape),
            "n_classes": self.n_classes,
            "stage_names": list(self.stage_names),
            "stage_sizes": [len(p[1]) for p in self.stages],
            "val_size": len(self.val[1]),
            "shift_size": 0 if self.shift is None else len(self.shift[1]),
            "meta": self.meta,
        }

    @classmethod
    def from_tensors(
        cls,
        stages: list[Pair],
        val: Pair,
        shift: Pair | None = None,
        *,
        n_classes: int | None = None,
        layout: str | None = None,
        stage_names: list[str] | None = None,
        name: str = "custom",
        imbalance: float | list[float] | None = None,
        imbalance_seed: int = 0,
    ) -> Curriculum:
        """Build a curriculum from your own tensors.

        Args:
            stages: list of (X, y) per stage, easiest first.
            val: (X, y) from the target distribution.
            shift: optional (X, y) from outside the training distribution.
            n_classes: defaults to 1 + the largest label seen.
            layout: ``"signal"`` for (N, L) inputs (default for 2-D X), ``"image"`` for (N, H, W).
            stage_names: optional names.
            name: a label for reports.
            imbalance: make the stages class-imbalanced by subsampling them: a ratio ``rho`` (head /
                tail class count; 1 at the first stage rising geometrically to ``rho`` at the last) or
                one ratio per stage, each in [1, 100] (`metacurr.tasks.imbalance.imbalance_stages`).
                ``val`` and ``shift`` are kept as given. ``None``: the stages as given.
            imbalance_seed: chooses the rare classes and the examples kept.

        Raises:
            ConfigError: mismatched X / y lengths, NaN / inf, empty stages, inconsistent shapes, fewer
                than 2 or more than `MAX_CLASSES` classes, val / shift classes that no stage teaches, bad
                imbalance ratios or a stage that cannot meet them.
        """
        if not isinstance(stages, (list, tuple)) or not stages:
            raise ConfigError("stages must be a non-empty list of (X, y) pairs")
        pairs = [_as_pair(p, f"stage {i}") for i, p in enumerate(stages)]
        val_p = _as_pair(val, "val")
        shift_p = None if shift is None else _as_pair(shift, "shift")
        n_classes = check_classes([p[1] for p in pairs], val_p[1], shift_p, n_classes)
        if layout is None:
            layout = "signal" if pairs[0][0].ndim == 2 else "image"
        meta: dict = {"source": "from_tensors"}
        if imbalance is not None:
            # Imported here: the helper builds on the families' shared code, which imports this module.
            from metacurr.tasks.imbalance import imbalance_stages

            pairs, meta["imbalance"] = imbalance_stages(pairs, imbalance, seed=imbalance_seed, n_classes=n_classes)
        return cls(
            stages=pairs,
            val=val_p,
            shift=shift_p,
            n_classes=n_classes,
            layout=layout,
            stage_names=list(stage_names or []),
            name=name,
            meta=meta,
        )

    @classmethod
    def from_scores(
        cls,
        x: torch.Tensor,
        y: torch.Tensor,
        scores: torch.Tensor,
        *,
        n_stages: int = 3,
        overlap: float = 0.1,
        val: Pair | None = None,
        shift: Pair | None = None,
        val_fraction: float = 0.2,
        seed: int = 0,
        n_classes: int | None = None,
        layout: str | None = None,
        name: str = "scored",
    ) -> Curriculum:
        """Cut stages from a per-example difficulty score (low score = easy).

        Examples are sorted by score and split into ``n_stages`` equal quantile bins; each stage is
        widened by ``overlap`` (a fraction of a bin) into its neighbours, so adjacent stages share
        examples. When ``val`` is not given, a random ``val_fraction`` of the examples (drawn with
        ``seed``) is held out first as the target-distribution set.

        Args:
            x, y: all examples and labels.
            scores: one difficulty score per example (e.g. from `metacurr.tasks.scoring.model_loss_scores`).
            n_stages: number of stages (>= 1, at most the number of training examples).
            overlap: fraction of a bin shared with each neighbour, in [0, 1).
            val, shift: optional evaluation sets.
            val_fraction: held-out fraction when ``val`` is None, in (0, 1).
            seed: seed of the held-out split.
            n_classes, layout, name: as in `from_tensors`.
        """
        x, y = _as_pair((x, y), "data")
        scores = torch.as_tensor(scores, dtype=torch.float64).flatten()
        if len(scores) != len(y):
            raise ConfigError(f"scores has {len(scores)} entries but there are {len(y)} examples")
        if not torch.isfinite(scores).all():
            raise ConfigError("scores contain NaN or inf")
        if not isinstance(n_stages, int) or n_stages < 1:
            raise ConfigError(f"n_stages must be a positive integer, got {n_stages!r}")
        if not (0.0 <= float(overlap) < 1.0):
            raise ConfigError(f"overlap must be in [0, 1), got {overlap!r}")
        if val is None:
            if not (0.0 < val_fraction < 1.0):
                raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
            g = torch.Generator().manual_seed(int(seed))
            perm = torch.randperm(len(y), generator=g)
            n_val = max(1, int(round(val_fraction * len(y))))
            vi, ti = perm[:n_val], perm[n_val:]
            val = (x[vi], y[vi])
            x, y, scores = x[ti], y[ti], scores[ti]
        n = len(y)
        if n_stages > n:
            raise ConfigError(f"n_stages={n_stages} does not fit {n} training examples")
        order = torch.argsort(scores, stable=True)
        bin_size = n / n_stages
        pad = int(math.floor(overlap * bin_size))
        stages = []
        for s in range(n_stages):
            lo = max(0, int(round(s * bin_size)) - pad)
            hi = min(n, int(round((s + 1) * bin_size)) + pad)
            idx = order[lo:hi]
            stages.append((x[idx], y[idx]))
        cur = cls.from_tensors(stages, val, shift, n_classes=n_classes, layout=layout, name=name)
        cur.meta = {"source": "from_scores", "n_stages": n_stages, "overlap": float(overlap)}
        return cur
