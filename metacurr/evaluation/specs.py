"""What to evaluate: controller specs from ``--controllers`` and named ablation variants from YAML.

A `ControllerSpec` is a labelled, JSON-serialisable recipe for one column of the comparison: a
controller (registry name or ``policy:PATH``), its keyword arguments, task overrides (e.g. a cosine
learning-rate schedule for an ablation) and an optional feature mask (`metacurr.evaluation.masking`).

``--controllers`` syntax (comma separated; commas inside ``{}`` / ``[]`` do not split)::

    uniform,heuristic{smoothing=1.0,max_step=1.0},bandit{algorithm=exp3},policy:runs/ppo/bundle,open-loop:heuristic

Values inside ``{}`` are read as YAML scalars / lists (``1.0``, ``true``, ``[0.2,0.3,0.5]``, ``window``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from metacurr.config import TaskSpec, load_yaml
from metacurr.controllers import make_controller
from metacurr.errors import ConfigError
from metacurr.evaluation.masking import resolve_mask
from metacurr.validation import parse_controller_ref, split_items, split_top_level

#: TaskSpec fields a variant may not override: they define the task and its seed.
FIXED_TASK_FIELDS = ("family", "arch", "n_stages", "seed")
VARIANT_KEYS = ("name", "controller", "controller_kwargs", "task", "mask", "description")
ABLATION_KEYS = ("description", "tasks", "seeds", "variants")
OPEN_LOOP_PREFIX = "open-loop:"
#: The controllers `metacurr.evaluate` compares when none are given (and no ablations file names variants).
DEFAULT_CONTROLLERS = "uniform,heuristic,best-static,dwa,uncertainty,gradnorm,self-paced,bandit,random,random-policy"


@dataclass(frozen=True)
class ControllerSpec:
    """One evaluated controller variant.

    Attributes:
        label: its name in results and reports (unique within an evaluation).
        controller: registry name or ``policy:PATH`` / ``wandb:...``.
        kwargs: controller keyword arguments.
        task: TaskSpec overrides applied to every task (ablations: lr_schedule, augment, norm, ...).
        mask: features frozen by `MaskedController` (a list, ``"open-loop"`` or None).
        description: free text for the report.
    """

    label: str
    controller: str
    kwargs: dict = field(default_factory=dict)
    task: dict = field(default_factory=dict)
    mask: str | list | None = None
    description: str = ""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ControllerSpec:
        return cls(**d)

    @property
    def is_policy(self) -> bool:
        """A learned policy (``policy:`` / ``wandb:``), the method the report's verdict is about."""
        return self.controller.startswith(("policy:", "wandb:"))


def parse_controller(item: str) -> ControllerSpec:
    """One ``--controllers`` item -> `ControllerSpec` (label = the item as written)."""
    label, text, mask = item, item, None
    if text.startswith(OPEN_LOOP_PREFIX):
        text, mask = text[len(OPEN_LOOP_PREFIX):], "open-loop"
    if text.startswith(("policy:", "wandb:")):
        return ControllerSpec(label=label, controller=text, mask=mask)
    text, kwargs = parse_controller_ref(text, item)
    return ControllerSpec(label=label, controller=text.strip(), kwargs=kwargs, mask=mask)


def parse_controllers(text: str) -> list[ControllerSpec]:
    """The ``--controllers`` list."""
    specs = [parse_controller(p) for p in split_items(text, "--controllers", split_top_level(text or "", keep_empty=True))]
    if not specs:
        raise ConfigError("no controllers given")
    return specs


def check_task_overrides(task: dict, where: str) -> dict:
    """Variant task overrides: TaskSpec fields other than family / arch / n_stages / seed."""
    if not isinstance(task, dict):
        raise ConfigError(f"{where}.task must be a mapping, got {type(task).__name__}")
    allowed = [f.name for f in dataclasses.fields(TaskSpec) if f.name not in FIXED_TASK_FIELDS]
    for k in task:
        if k not in allowed:
            raise ConfigError(f"unknown or fixed key {where}.task.{k}; valid choices: {', '.join(allowed)}")
    return dict(task)


def load_ablations(path: str | Path) -> tuple[list[ControllerSpec], dict]:
    """Read an ablations YAML: ``variants`` (a list of {name, controller, controller_kwargs, task, mask,
    description}) plus optional defaults ``tasks`` / ``seeds`` / ``description``.

    Returns:
        (the variants as specs, the defaults dict).
    """
    data = load_yaml(path)
    for k in data:
        if k not in ABLATION_KEYS:
            raise ConfigError(f"unknown key {k!r} in {path}; valid choices: {', '.join(ABLATION_KEYS)}")
    variants = data.get("variants")
    if not isinstance(variants, list) or not variants:
        raise ConfigError(f"{path}: 'variants' must be a non-empty list")
    specs = []
    for i, v in enumerate(variants):
        where = f"variants[{i}]"
        if not isinstance(v, dict):
            raise ConfigError(f"{path}: {where} must be a mapping")
        for k in v:
            if k not in VARIANT_KEYS:
                raise ConfigError(f"unknown key {where}.{k} in {path}; valid choices: {', '.join(VARIANT_KEYS)}")
        if not isinstance(v.get("name"), str) or not isinstance(v.get("controller"), str):
            raise ConfigError(f"{path}: {where} needs a string 'name' and 'controller'")
        kw = v.get("controller_kwargs") or {}
        if not isinstance(kw, dict):
            raise ConfigError(f"{path}: {where}.controller_kwargs must be a mapping")
        specs.append(ControllerSpec(label=v["name"], controller=v["controller"], kwargs=dict(kw),
                                    task=check_task_overrides(v.get("task") or {}, where),
                                    mask=v.get("mask"), description=str(v.get("description") or "")))
    defaults = {k: data[k] for k in ("tasks", "seeds", "description") if k in data}
    return specs, defaults


def validate_specs(specs: list[ControllerSpec], tasks: list[dict] | None = None) -> dict[str, str | None]:
    """Unique labels, known controllers and parameters, valid masks; policies must load and, given
    ``tasks``, serve every task's stage count. Returns each label's controller ``identity`` (a policy
    bundle's manifest checksum, else None)."""
    labels = [s.label for s in specs]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ConfigError(f"controller {dup[0]!r} is listed twice")
    identities: dict[str, str | None] = {}
    for s in specs:
        resolve_mask(s.mask)
        try:
            ctrl = make_controller(s.controller, **s.kwargs)
        except ModuleNotFoundError as e:
            raise ConfigError(f"cannot load controller {s.controller!r}: {e}") from None
        identities[s.label] = ctrl.identity
        for t in tasks or []:
            if isinstance(t.get("n_stages"), bool) or not isinstance(t.get("n_stages"), int):
                continue  # a bad stage count is reported by the task's own check
            try:
                ctrl.check_stages(t["n_stages"])
            except ConfigError as e:
                raise ConfigError(f"controller {s.label!r} cannot run task {t['name']!r}: {e}") from None
    return identities
