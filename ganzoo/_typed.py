"""Build frozen dataclasses from TOML values with strict type checks (no silent coercion)."""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal, Union

from ganzoo._names import did_you_mean


class FieldError(ValueError):
    """A value does not fit a field; ``key`` names the field (empty for the whole object)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(type_name(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        args = typing.get_args(tp)
        return f"list of {type_name(args[0])}" if args else "list"
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` as type ``tp`` or raise FieldError; ints widen to float, nothing else."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value in allowed and type(value) is type(allowed[0]):
            return value
        hint = did_you_mean(str(value), [str(a) for a in allowed]).rstrip()
        raise FieldError(key, f"{value!r} is not one of {type_name(tp)}.{' ' + hint if hint else ''}")
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return coerce(value, arg, key)
            except FieldError:
                pass
        raise FieldError(key, f"expected {type_name(tp)}, got {value!r}.")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise FieldError(key, f"expected {type_name(tp)}, got {value!r}.")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        return tuple(coerce(v, item, key) for v in value)
    if tp is type(None):
        if value is None:
            return None
        raise FieldError(key, f"expected none, got {value!r}.")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise FieldError(key, f"expected {type_name(tp)}, got {value!r} ({type(value).__name__}).")


def build_dataclass(cls: type, values: dict[str, Any]) -> Any:
    """Instantiate dataclass ``cls`` from ``values``; unknown keys and bad types raise FieldError.

    A ValueError raised by the class's ``__post_init__`` (range checks) becomes a FieldError;
    when its message starts with a field name ("ngf must be >= 1") that field is the key.
    """
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            hint = did_you_mean(key, fields)
            raise FieldError(key, f"unknown key. {hint}Valid keys: {', '.join(fields) or '(none)'}.")
        kwargs[key] = coerce(value, hints[key], key)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise FieldError(missing[0], f"required key is missing (type {type_name(hints[missing[0]])}).")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        # range checks are phrased "<field> must be ...": the first word names the field
        first = msg.split(" ", 1)[0] if msg else ""
        key = first if first in fields else ""
        raise FieldError(key, msg) from exc


def to_plain(obj: Any) -> dict[str, Any]:
    """A dataclass as a dict of TOML-friendly values (tuples become lists)."""
    out = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out
