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
import functools
import types
import typing
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

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
    found: T = _checker(cast(Hashable, cls))(value, where)
    return found


Check = Callable[[object, str], Any]  # a JSON value and where it is -> the value as its type, or BadRecord


@functools.cache
def _checker(hint: Any) -> Check:
    """The function that checks a value against ``hint``: made once per annotation, so a file of thousands
    of records costs one look at each value."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return lambda value, at: value
    if origin in (types.UnionType, typing.Union):
        return _union(args)
    if origin is list:
        item = _checker(args[0])
        return lambda value, at: [item(v, f"{at}[{i}]") for i, v in enumerate(_of(list, value, at))]
    if origin is dict:
        item = _checker(args[1])
        return lambda value, at: {str(k): item(v, f"{at}.{k}") for k, v in _of(dict, value, at).items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass(hint)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(hint)
    if hint in SCALARS:
        return _scalar((hint,))
    raise TypeError(f"no check for {hint!r}")  # a record declared with a type this module does not know


def _of(kind: type, value: object, at: str) -> Any:
    if not isinstance(value, kind):
        raise BadRecord(at, f"must be {'a list' if kind is list else 'an object'}, not {_kind(value)}")
    return value


def _dataclass(cls: type) -> Check:
    hints = typing.get_type_hints(cls)
    fields = [
        (
            f.name,
            f.metadata.get("key", f.name),
            _checker(hints[f.name]),
            f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
        )
        for f in dataclasses.fields(cls)
    ]

    def check(value: object, where: str) -> Any:
        given: dict[str, Any] = {}
        for attribute, name, field_check, required in fields:
            at = f"{where}.{name}" if where else name
            if name in _of(dict, value, where):
                given[attribute] = field_check(value[name], at)  # type: ignore[index]
            elif required:
                raise BadRecord(at, "is missing")
        try:
            return cls(**given)
        except ValueError as e:
            if isinstance(e, BadRecord):
                raise
            raise BadRecord(where, str(e)) from None

    return check


def _union(args: tuple[Any, ...]) -> Check:
    optional = type(None) in args
    wanted = [a for a in args if a is not type(None)]
    if all(a in SCALARS for a in wanted):
        return _scalar(tuple(wanted), optional)
    checks = [_checker(a) for a in wanted]

    def check(value: object, at: str) -> Any:
        if value is None and optional:
            return None
        problems = []
        for one in checks:
            try:
                return one(value, at)
            except BadRecord as e:
                problems.append(e.why)
        raise BadRecord(
            at, problems[0] if len(checks) == 1 else f"must be {_names(wanted)}, not {_kind(value)}"
        )

    return check


def _enum(kind: type[enum.Enum]) -> Check:
    def check(value: object, at: str) -> Any:
        try:
            return kind(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in kind)
            raise BadRecord(at, f"must be one of {allowed}, not {value!r:.60}") from None

    return check


SCALARS = (bool, int, float, str)


def _scalar(wanted: tuple[type, ...], optional: bool = False) -> Check:
    """One of the JSON scalars ``wanted`` (an integer is a number too; true is not); checked without an
    exception for each miss, since a history holds thousands of them."""

    def check(value: object, at: str) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, bool):
            if bool in wanted:
                return value
        elif isinstance(value, int):
            if int in wanted:
                return value
            if float in wanted:
                return float(value)
        elif isinstance(value, float):
            if float in wanted:
                return value
        elif isinstance(value, str) and str in wanted:
            if len(value) > MAX_TEXT:
                raise BadRecord(at, f"is {len(value)} characters long, more than {MAX_TEXT}")
            return value
        raise BadRecord(at, f"must be {_names(list(wanted))}, not {_kind(value)}")

    return check


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
