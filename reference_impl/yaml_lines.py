"""YAML loading that remembers the line of every field, so spec errors can point at it.

Hostile input is bounded here (see ``loss_conformance_reference.limits``): nesting depth and alias uses while
composing, and the expanded size while converting, since an alias is a reference that the
conversion copies (a "billion laughs" file is small until it is expanded).
"""
from __future__ import annotations

from typing import Any

import yaml

from loss_conformance_reference.limits import MAX_INT_BITS, MAX_YAML_ALIASES, MAX_YAML_CHARS, MAX_YAML_DEPTH, MAX_YAML_NODES

Path_ = tuple[Any, ...]

_TAG = "tag:yaml.org,2002:"
# JSON's types only: no timestamps, binary, sets, and never a python/* object.
_SCALAR_TAGS = frozenset(_TAG + t for t in ("str", "int", "float", "bool", "null"))
_INT_TEXT_CHARS = 100  # longer int text is refused before int() parses it


class YamlError(ValueError):
    def __init__(self, message: str, line: int | None, field: str) -> None:
        super().__init__(message)
        self.message, self.line, self.field = message, line, field


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, composing with the nesting depth and the alias uses bounded (the composer
    recurses once per level: a 1,000-deep document would exhaust Python's stack)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.path: list[Any] = []
        self.aliases = 0
        self.nodes = 0

    def where(self) -> str:
        return format_path(tuple(p for p in self.path if p is not None))  # None: the root, or a key

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1
        self.nodes += 1
        if self.nodes > MAX_YAML_NODES:  # stops early: the pure-Python parser takes ~30 us a node
            raise YamlError(f"more than {MAX_YAML_NODES} values", line, self.where())
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_YAML_ALIASES:
                raise YamlError(f"more than {MAX_YAML_ALIASES} aliases", line, self.where())
        part = index.value if isinstance(index, yaml.ScalarNode) else index
        self.path.append(part)
        try:
            if len(self.path) > MAX_YAML_DEPTH:
                raise YamlError(f"nested more than {MAX_YAML_DEPTH} levels deep", line,
                                self.where())
            return super().compose_node(parent, index)
        finally:
            self.path.pop()


def load_with_lines(text: str) -> tuple[Any, dict[Path_, int]]:
    """Parse ``text`` with the safe loader; return the data and a map path -> 1-based line."""
    root = _compose_fast(text)
    if root is _SLOW:
        root = _compose_bounded(text)
    lines: dict[Path_, int] = {}
    if root is None:
        lines[()] = 1  # an empty file: the error is on its first line
        return None, lines
    return _Converter(lines).convert(root, ()), lines


_SLOW = object()


def _compose_fast(text: str) -> Any:
    """The node tree by libyaml, ten times faster than the pure-Python composer, once a pass over
    its events has found the document within the bounds (libyaml's composer recurses in C, with no
    depth limit); ``_SLOW`` where it is not, or where libyaml is missing or finds the document
    wrong: the bounded composer then says what is wrong, and where, in its own words."""
    if not getattr(yaml, "__with_libyaml__", False):
        return _SLOW
    try:
        yaml.reader.Reader(text)  # the pure-Python reader's check for control characters
        events = yaml.CSafeLoader(text)
        try:
            depth = nodes = aliases = 0
            while (event := events.get_event()) is not None:
                if isinstance(event, (yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                    nodes += 1
                aliases += isinstance(event, yaml.AliasEvent)
                depth += isinstance(event, yaml.CollectionStartEvent) - isinstance(event, yaml.CollectionEndEvent)
                if nodes > MAX_YAML_NODES or aliases > MAX_YAML_ALIASES or depth >= MAX_YAML_DEPTH:
                    return _SLOW
        finally:
            events.dispose()
        loader = yaml.CSafeLoader(text)
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError:
        return _SLOW


def _compose_bounded(text: str) -> Any:
    try:
        loader = _BoundedLoader(text)  # the reader checks for control characters here already
        try:
            return loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise YamlError(f"not valid YAML: {getattr(exc, 'problem', None) or _reason(exc)}", _line(exc, text),
                        "(document)") from None


def _reason(exc: yaml.YAMLError) -> str:
    return getattr(exc, "reason", None) or str(exc)


def _line(exc: yaml.YAMLError, text: str) -> int | None:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return mark.line + 1
    if isinstance(exc, yaml.reader.ReaderError):  # a control character: only its position is known
        return text.count("\n", 0, exc.position) + 1
    return None


class _Converter:
    """Node tree -> plain data, counting what aliases expand to."""

    def __init__(self, lines: dict[Path_, int]) -> None:
        self.lines = lines
        self.nodes = 0
        self.chars = 0
        self.constructor = yaml.constructor.SafeConstructor()

    def convert(self, node: yaml.Node, path: Path_) -> Any:
        line = node.start_mark.line + 1
        self.nodes += 1
        if self.nodes > MAX_YAML_NODES:
            raise YamlError(f"more than {MAX_YAML_NODES} values once aliases are expanded", line, format_path(path))
        if len(path) > MAX_YAML_DEPTH:  # deeper through aliases, or an alias inside its own anchor
            raise YamlError(f"nested more than {MAX_YAML_DEPTH} levels deep once aliases are expanded", line,
                            format_path(path))
        self.lines[path] = line
        if isinstance(node, yaml.MappingNode):
            self.check_tag(node, "map", path)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise YamlError("mapping keys must be plain names", key_node.start_mark.line + 1, format_path(path))
                key = self.scalar(key_node, path)
                if key in out:
                    raise YamlError(f"duplicate key '{key}'", key_node.start_mark.line + 1, format_path(path + (key,)))
                out[key] = self.convert(value_node, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            self.check_tag(node, "seq", path)
            return [self.convert(item, path + (i,)) for i, item in enumerate(node.value)]
        return self.scalar(node, path)

    def check_tag(self, node: yaml.Node, kind: str, path: Path_) -> None:
        # A tag on a collection is never constructed, but it is a mistake or a probe: refuse it.
        if node.tag != _TAG + kind:
            raise YamlError(f"not allowed in a spec: the tag {node.tag}", node.start_mark.line + 1, format_path(path))

    def scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        line = node.start_mark.line + 1
        self.chars += len(node.value)
        if self.chars > MAX_YAML_CHARS:
            raise YamlError(f"more than {MAX_YAML_CHARS} characters once aliases are expanded", line, format_path(path))
        if node.tag not in _SCALAR_TAGS:
            raise YamlError(f"not allowed in a spec: the tag {node.tag}", line, format_path(path))
        if node.tag == _TAG + "int" and len(node.value) > _INT_TEXT_CHARS:
            raise YamlError(f"integer literal of {len(node.value)} characters; at most {MAX_INT_BITS} bits", line,
                            format_path(path))
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as exc:
            raise YamlError(f"not allowed in a spec: {getattr(exc, 'problem', None) or exc}", line,
                            format_path(path)) from None
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
            raise YamlError(f"integer literal of {value.bit_length()} bits; at most {MAX_INT_BITS}", line,
                            format_path(path))
        return value


def format_path(path: Path_) -> str:
    """('variants', 0, 'formula', 'loss') -> 'variants[0].formula.loss'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def line_of(lines: dict[Path_, int], path: Path_) -> int | None:
    """The line of ``path``, or of its nearest ancestor that has one."""
    while path not in lines and path:
        path = path[:-1]
    return lines.get(path)
