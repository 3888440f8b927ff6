"""Typed records parsed from JSON a trial left: a dataclass's annotations are its schema.

:func:`parse` builds a frozen dataclass from a JSON value, checking every field against its annotation
(``int``, ``float``, ``str``, ``bool``, ``X | None``, ``list[X]``, ``dict[str, X]``, an enum, another such
dataclass, ``Any``); a key the dataclass does not name is left out, one it names without a default must be
there, and a class may check more in ``__post_init__`` (raising ValueError). What does not fit raises
:class:`BadRecord` with where it is (``history[3].epoch``) and what was wrong, which the reader turns into
the trial's failure. Standard library only: the checks are few and this runs in every command.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")
MAX_TEXT = 100_000  # the longest string any record holds (a traceback is the longest the harness writes)


class BadRecord(ValueError):
    """A JSON value does not fit its record: ``where`` it is, ``why``."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}" if where else why)
        self.where = where
        self.why = why


def key(name: str) -> Any:
    """A field whose JSON key is ``name`` (``class``, which Python cannot name a field)."""
    return dataclasses.field(default=None, metadata={"key": name})


def parse(cls: type[T], value: object, where: str = "") -> T:
    """``value`` as the dataclass ``cls``; BadRecord when it does not fit."""
    if not isinstance(value, dict):
        raise BadRecord(where, f"must be an object, not {_kind(value)}")
    hints = typing.get_type_hints(cls)
    given: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = field.metadata.get("key", field.name)
        at = f"{where}.{name}" if where else name
        if name in value:
            given[field.name] = _value(hints[field.name], value[name], at)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise BadRecord(at, "is missing")
    try:
        return cls(**given)
    except ValueError as e:
        if isinstance(e, BadRecord):
            raise
        raise BadRecord(where, str(e)) from None


def _value(hint: Any, value: object, at: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        wanted = [a for a in args if a is not type(None)]
        problems = []
        for arg in wanted:
            try:
                return _value(arg, value, at)
            except BadRecord as e:
                problems.append(e.why)
        raise BadRecord(
            at, problems[0] if len(wanted) == 1 else f"must be {_names(wanted)}, not {_kind(value)}"
        )
    if origin is list:
        if not isinstance(value, list):
            raise BadRecord(at, f"must be a list, not {_kind(value)}")
        return [_value(args[0], item, f"{at}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise BadRecord(at, f"must be an object, not {_kind(value)}")
        return {str(k): _value(args[1], v, f"{at}.{k}") for k, v in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return parse(hint, value, at)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in hint)
            raise BadRecord(at, f"must be one of {allowed}, not {value!r:.60}") from None
    return _plain(hint, value, at)


def _plain(hint: Any, value: object, at: str) -> Any:
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise BadRecord(at, f"is {len(value)} characters long, more than {MAX_TEXT}")
        return value
    raise BadRecord(at, f"must be {_names([hint])}, not {_kind(value)}")


def _names(hints: list[Any]) -> str:
    words = {bool: "true or false", int: "an integer", float: "a number", str: "text"}
    return " or ".join(words.get(h, getattr(h, "__name__", str(h))) for h in hints)


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__
