"""Parsing the trust's YAML strictly, remembering where each value was written.

PyYAML's safe loader lets the last of two equal keys win silently and raises a
bare ValueError on a date such as 2026-02-30. `StrictLoader` refuses duplicate
keys (both lines named), keeps an impossible date as the text written (so the
model's date check names the field), and records the line of every mapping key
and list item, so a later error on `schools[0].calendar.terms[1].start` can
name its line too. `expanded_size` bounds what aliases can multiply.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

# libyaml's parser when present (a trust with thousands of zones loads 10x faster); the
# construction below is PyYAML's Python constructor either way, so both behave the same
_BASE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_EXPANDED_VALUES = 1_000_000  # a 3-school example holds about 2,000


@dataclass(frozen=True)
class DuplicateKey:
    container: dict[Any, Any]
    key: Hashable
    line: int
    first_line: int


@dataclass
class Positions:
    """Line numbers (1-based) of what the loader built: per mapping its keys, per list its items.

    Keyed by id(); the objects are held too, so no id is reused while this lives."""

    lines: dict[int, tuple[Any, dict[Any, int] | list[int]]] = field(default_factory=dict)

    def remember(self, container: Any, lines: dict[Any, int] | list[int]) -> None:
        self.lines[id(container)] = (container, lines)

    def line_of(self, data: Any, loc: Iterable[Any]) -> int | None:
        """The line of the deepest part of `loc` (a pydantic location) that the file wrote."""
        found = None
        for part in loc:
            entry = self.lines.get(id(data))
            if entry is None:
                break
            _, lines = entry
            try:
                line = lines[part]
                data = data[part]
            except (KeyError, IndexError, TypeError):
                break
            found = line
        return found


class StrictLoader(_BASE):
    """A safe loader that refuses duplicate keys and records where values were written."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.positions = Positions()
        self.duplicates: list[DuplicateKey] = []

    def construct_yaml_map(self, node: MappingNode) -> Iterator[dict[Any, Any]]:
        data: dict[Any, Any] = {}
        yield data
        first: dict[Any, int] = {}
        for key_node, _ in node.value:  # the keys written here, before any `<<` merge
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # construct_mapping below names an unhashable key
            line = key_node.start_mark.line + 1
            if key in first:
                self.duplicates.append(DuplicateKey(data, key, line, first[key]))
            else:
                first[key] = line
        data.update(self.construct_mapping(node))
        lines = {}
        for key_node, _ in node.value:  # merged pairs first, so the written key's line wins
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, Hashable):
                lines[key] = key_node.start_mark.line + 1
        self.positions.remember(data, lines)

    def construct_yaml_seq(self, node: SequenceNode) -> Iterator[list[Any]]:
        data: list[Any] = []
        yield data
        data.extend(self.construct_sequence(node))
        self.positions.remember(data, [item.start_mark.line + 1 for item in node.value])

    def construct_yaml_timestamp(self, node: ScalarNode) -> Any:
        """A date or time stamp; one that cannot exist (2026-02-30) stays the text written, for
        the field's own check to reject with its path, instead of a ValueError from here."""
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, TypeError, AttributeError):
            return self.construct_scalar(node)


StrictLoader.add_constructor("tag:yaml.org,2002:map", StrictLoader.construct_yaml_map)
StrictLoader.add_constructor("tag:yaml.org,2002:seq", StrictLoader.construct_yaml_seq)
StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", StrictLoader.construct_yaml_timestamp)


@dataclass
class YamlDocument:
    data: Any
    positions: Positions
    duplicates: list[DuplicateKey]

    def line_of(self, loc: Iterable[Any]) -> int | None:
        return self.positions.line_of(self.data, loc)


def parse_yaml(text: str) -> YamlDocument:
    """The document in `text`; yaml.YAMLError (with a mark) when it is not valid YAML."""
    loader = StrictLoader(text)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()
    return YamlDocument(data, loader.positions, loader.duplicates)


def expanded_size(data: Any, limit: int = MAX_EXPANDED_VALUES) -> int:
    """How many values the document holds once every alias is expanded, counting no further
    than `limit`: validation walks the expanded tree, so nine nested aliases of ten items each
    (a "billion laughs") or an alias of its own parent (a loop) must be stopped before it."""
    count = 0
    stack = [data]
    while stack and count <= limit:
        value = stack.pop()
        count += 1
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return count


def path_to(data: Any, target: Any) -> list[Any] | None:
    """The keys and indexes leading from `data` to the object `target` (by identity)."""
    stack: list[tuple[Any, list[Any]]] = [(data, [])]
    seen: set[int] = set()
    while stack:
        value, path = stack.pop()
        if value is target:
            return path
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, dict):
            stack.extend((v, [*path, k]) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, [*path, i]) for i, v in enumerate(value))
    return None
