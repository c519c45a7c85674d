"""Building config dataclasses from dicts (pipeline parameters, YAML, JSON) with unknown fields rejected."""

from __future__ import annotations

import dataclasses
import typing

from kfp_llmops.errors import ConfigError


def from_dict(cls, values: dict | None, *, where: str | None = None):
    """``cls(**values)`` after rejecting unknown fields (naming them) and turning whole floats into ints where the
    field is an int (kfp.local and the KFP UI send integers as floats). Nested dataclass fields take dicts."""
    name = where or cls.__name__
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{name}: unknown field(s) {unknown}; known fields are {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        hint = hints.get(key)
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            values[key] = from_dict(hint, value, where=f"{name}.{key}")
        elif hint is int and isinstance(value, float) and value.is_integer():
            values[key] = int(value)
        else:
            _check_type(f"{name}.{key}", hint, value)
    try:
        return cls(**values)
    except TypeError as exc:  # e.g. a required field left out
        raise ConfigError(f"{name}: {exc}") from None


_SIMPLE = {  # JSON type checks: a bool is not a number here, an int is a float
    int: ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    str: ("a string", lambda v: isinstance(v, str)),
    bool: ("true or false", lambda v: isinstance(v, bool)),
}


def _check_type(where: str, hint, value) -> None:
    """A value of the wrong JSON type is named here, not left to fail as a TypeError deep inside a step."""
    if hint in _SIMPLE:
        kind, ok = _SIMPLE[hint]
        if not ok(value):
            raise ConfigError(f"{where} must be {kind}, got {value!r}")
    elif typing.get_origin(hint) in (tuple, list) and not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where} must be a list, got {value!r}")
