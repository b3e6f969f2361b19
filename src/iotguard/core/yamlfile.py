"""YAML configuration files whose errors name the line: ``policy.yaml:12:5 field 'ttl': ...``.

:func:`load_yaml` reads a file with PyYAML's safe loader and remembers where every mapping key and list item
came from. Anchors and aliases (``&name`` / ``*name``, ``<<: *name``) are refused: iotguard's files need
none, and an alias is how a few hundred bytes expand into billions of nodes ("billion laughs").
:func:`validate` checks the data against a pydantic model and turns the first validation error
into a :class:`~iotguard.core.errors.ConfigError` that points at the offending line.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from iotguard.core.errors import ConfigError, location

M = TypeVar("M", bound=BaseModel)


class MarkedDict(dict):
    """A mapping that remembers the 1-based line and column of each key (``marks[key]``) and of itself."""

    marks: dict[Any, tuple[int, int]]
    mark: tuple[int, int]


class MarkedList(list):
    marks: list[tuple[int, int]]
    mark: tuple[int, int]


class _Loader(yaml.SafeLoader):
    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # Refuse an alias where PyYAML would resolve it, before any node is built from it: expansion, not
        # parsing, is what makes an alias bomb grow without bound.
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Alias(event.anchor, event.start_mark.line + 1, event.start_mark.column + 1)
        return super().compose_node(parent, index)


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> MarkedDict:
    loader.flatten_mapping(node)
    out = MarkedDict()
    out.marks = {}
    out.mark = _pos(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise ConfigError(
                "a mapping key must be a plain value", where=f"line {_pos(key_node)[0]}"
            ) from None
        if key in out:
            line, col = _pos(key_node)
            raise _DuplicateKey(key, line, col)
        out[key] = loader.construct_object(value_node, deep=True)
        out.marks[key] = _pos(key_node)
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> MarkedList:
    out = MarkedList(loader.construct_object(child, deep=True) for child in node.value)
    out.marks = [_pos(child) for child in node.value]
    out.mark = _pos(node)
    return out


class _Alias(Exception):
    def __init__(self, anchor: str, line: int, column: int) -> None:
        self.anchor, self.line, self.column = anchor, line, column


class _DuplicateKey(Exception):
    def __init__(self, key: Any, line: int, column: int) -> None:
        self.key, self.line, self.column = key, line, column


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def load_yaml(path: str | PathLike[str], *, text: str | None = None) -> Any:
    """Parse a YAML file (safe loader). Syntax errors, duplicate keys and aliases raise ConfigError naming
    the line."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read file: {exc}", where=str(path)) from exc
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except _Alias as exc:
        raise ConfigError(
            f"YAML alias *{exc.anchor} is not supported (anchors and aliases are refused: write the value out)",
            where=location(path, line=exc.line, column=exc.column),
        ) from None
    except _DuplicateKey as exc:
        raise ConfigError(
            f"duplicate key {exc.key!r}", where=location(path, line=exc.line, column=exc.column)
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = location(path, line=mark.line + 1, column=mark.column + 1) if mark else str(path)
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise ConfigError(f"invalid YAML: {what}", where=where) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", where=str(path)) from None


def parse_value(text: str) -> Any:
    """A value written in YAML on one line (an environment variable, a ``--set`` flag), aliases refused as in
    :func:`load_yaml`. Raises ``yaml.YAMLError`` (an alias too) when it is not valid YAML."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except (_Alias, _DuplicateKey) as exc:
        raise yaml.YAMLError(str(exc)) from None


def line_of(data: Any, loc: tuple[Any, ...]) -> tuple[int, int] | None:
    """The line and column of the deepest node along ``loc`` (a path of keys and indexes) that has a mark."""
    best = getattr(data, "mark", None)
    node = data
    for part in loc:
        if isinstance(node, MarkedDict) and part in node:
            best = node.marks.get(part, best)
            node = node[part]
        elif isinstance(node, MarkedList) and isinstance(part, int) and 0 <= part < len(node):
            best = node.marks[part]
            node = node[part]
        else:
            break
    return best


def validate(model: type[M], data: Any, path: str | PathLike[str]) -> M:
    """``model.model_validate(data)``; the first error becomes a ConfigError naming the file, line and field."""
    if data is None:
        data = {}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first.get("loc", ()))
        where_line = line_of(data, loc)
        # pydantic adds the tag of a union branch to loc; keep only the parts a user wrote.
        field = ".".join(
            str(p) for p in loc if isinstance(p, str | int) and not str(p).startswith("function-")
        )
        msg = first.get("msg", "invalid value")
        if first.get("type") == "extra_forbidden":
            msg = "unknown key"
        msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        where = location(
            path,
            line=where_line[0] if where_line else None,
            column=where_line[1] if where_line else None,
            field=field or None,
        )
        raise ConfigError(msg, where=where) from None
