"""Typed config fields: each YAML value converted to its dataclass field's declared type, with the field's
help and rules in every error (plain PyYAML reads ``lr: 2e-4`` as a string).

Shared by every typed config (the tokenizer's ``AgentConfig``, the prior's, the tracker's), apart from
any one of them so that a config module stays one concept long.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import field
from typing import Any

import yaml

from motion_vqvae.errors import InvalidType, InvalidValue, UnknownKey


def _opt(default: Any, help: str, **rules: Any) -> Any:
    """A config field: default, one-line help (shown in errors) and validation rules."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **rules})
    return field(default=default, metadata={"help": help, **rules})


config_field = _opt
"""Public name of :func:`_opt` for the other typed configs (``motion_vqvae.prior.config``)."""


def typed_from_dict(cls: type, values: dict[str, Any], source: str = "config") -> Any:
    """``cls(**values)`` for a config dataclass, each value converted to its field's declared type.

    Shared by every config of the project (agent, prior), so all of them reject unknown keys naming the
    closest valid one and read ``2e-4`` as a float.
    """
    if not isinstance(values, dict):
        raise InvalidType(f"{source}: expected a mapping of config keys, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    converted = {}
    for key, value in values.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(sorted(fields))}"
            raise UnknownKey(f"{source}: unknown config key '{key}'; {hint}")
        converted[key] = _convert(value, hints[key], fields[key].metadata, f"{source}: key '{key}'")
    return cls(**converted)


def _convert(value: Any, hint: Any, meta: Any, where: str) -> Any:
    """Convert ``value`` to ``hint`` (int, float, bool, str, list[...], X | None) and check the rules."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~")):
            return None
        inner = next(a for a in args if a is not type(None))
        return _convert(value, inner, meta, where)
    if origin is list:
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip() else []
        if not isinstance(value, (list, tuple)):
            raise InvalidType(f"{where}: expected a list, got {value!r}")
        return [_convert(v, args[0], {}, f"{where}[{i}]") for i, v in enumerate(value)]
    out = _scalar(value, hint, where)
    choices = meta.get("choices")
    if choices is not None and out not in choices:
        raise InvalidValue(f"{where}: {out!r} is not allowed; choose one of {[c for c in choices if c]}")
    allowed = _allowed_range(meta)
    # NaN compares false with every bound, so it must be refused before the range checks, not by them.
    if isinstance(out, float) and not math.isfinite(out):
        raise InvalidValue(
            f"{where}: {value!r} is not a finite number; NaN and infinity are refused (training would "
            f"stop on a non-finite loss); allowed: {allowed}"
        )
    if "min" in meta and out < meta["min"]:
        raise InvalidValue(
            f"{where}: {out!r} is below the minimum {meta['min']}; allowed: {allowed} ({meta.get('help')})"
        )
    if "max" in meta and out > meta["max"]:
        raise InvalidValue(
            f"{where}: {out!r} is above the maximum {meta['max']}; allowed: {allowed} ({meta.get('help')})"
        )
    return out


def _allowed_range(meta: Any) -> str:
    """The range a field's rules allow, as a message shows it (``[0.0, 1.0]``, ``>= 1``, finite numbers)."""
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        return f"[{low}, {high}]"
    if low is not None:
        return f">= {low}"
    if high is not None:
        return f"<= {high}"
    return "any finite number"


def _scalar(value: Any, hint: type, where: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise InvalidType(f"{where}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise InvalidType(f"{where}: expected an integer, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidType(f"{where}: expected an integer, got {value!r}") from None
        if not number.is_integer():
            raise InvalidType(f"{where}: expected an integer, got {value!r}")
        return int(number)
    if hint is float:
        if isinstance(value, bool):
            raise InvalidType(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise InvalidType(f"{where}: expected a number such as 2e-4, got {value!r}") from None
    if hint is str:
        if isinstance(value, (dict, list)):
            raise InvalidType(f"{where}: expected text, got {value!r}")
        return str(value)
    raise TypeError(f"{where}: unsupported field type {hint}")
