"""Sweep parameters -> a target command's config mapping: dotted keys set into nested dicts.

The runner knows nothing of any target's config schema: ``ppo.learning_rate: 3e-4`` becomes
``{"ppo": {"learning_rate": 3e-4}}`` and the target command validates the result like any config file.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

from metacurr.errors import ConfigError


def set_dotted(data: dict, key: str, value: Any) -> None:
    """Set ``data["a"]["b"] = value`` for ``key="a.b"``, creating mappings on the way.

    A mapping ``value`` is merged into an existing mapping (W&B's nested ``parameters`` arrive so).

    Raises:
        ConfigError: an empty key part, or a non-mapping value in the way.
    """
    parts = key.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"bad sweep parameter name {key!r}: empty part in a dotted name")
    node = data
    for i, p in enumerate(parts[:-1]):
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            where = ".".join(parts[: i + 1])
            raise ConfigError(f"sweep parameter {key!r}: config key {where!r} holds {nxt!r}, not a mapping")
        node = nxt
    last = parts[-1]
    if isinstance(value, dict) and isinstance(node.get(last), dict):
        for k, v in value.items():
            set_dotted(node, f"{last}.{k}", v)
    else:
        node[last] = copy.deepcopy(value)


def apply_params(base: dict, params: dict[str, Any]) -> dict:
    """A copy of ``base`` with every sweep parameter set (dotted names, in order)."""
    data = copy.deepcopy(base)
    for k, v in params.items():
        set_dotted(data, str(k), v)
    return data


def _value(text: str) -> Any:
    # JSON first: it keeps 1e-05 a float (YAML 1.1 reads it as a string); YAML for W&B's Python reprs
    try:
        return json.loads(text)
    except ValueError:
        pass
    if text in ("None", "True", "False"):
        return {"None": None, "True": True, "False": False}[text]
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_param_tokens(tokens: list[str]) -> dict[str, Any]:
    """Sweep parameters as W&B's agent passes them, in any of its command macro forms.

    * ``${args_json}``: one JSON object;
    * ``${args_json_file}``: a path to a JSON file holding that object;
    * ``${args_no_hyphens}``: ``name=value`` tokens (values read as JSON, else YAML, else text).

    Raises:
        ConfigError: a token in none of these forms, or an unreadable file.
    """
    out: dict[str, Any] = {}
    for tok in tokens:
        t = tok.strip()
        if not t:
            continue
        if t.startswith("{"):
            try:
                obj = json.loads(t)
            except ValueError as e:
                raise ConfigError(f"sweep parameters: malformed JSON ({e})") from None
        elif "=" in t:
            k, v = t.split("=", 1)
            obj = {k: _value(v)}
        elif t.endswith(".json") or Path(t).is_file():
            try:
                obj = json.loads(Path(t).read_text())
            except (OSError, ValueError) as e:
                raise ConfigError(f"sweep parameters: cannot read {t} ({e})") from None
        else:
            raise ConfigError(f"sweep parameters: expected JSON, a JSON file or name=value, got {t!r}")
        if not isinstance(obj, dict):
            raise ConfigError(f"sweep parameters: expected a JSON object, got {type(obj).__name__}")
        out.update(obj)
    return out
