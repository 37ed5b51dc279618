"""YAML loading that remembers the line of every field, so spec errors can point at it."""
from __future__ import annotations

from typing import Any

import yaml

Path_ = tuple[Any, ...]


class YamlError(ValueError):
    def __init__(self, message: str, line: int | None, field: str) -> None:
        super().__init__(message)
        self.message, self.line, self.field = message, line, field


def load_with_lines(text: str) -> tuple[Any, dict[Path_, int]]:
    """Parse ``text`` with the safe loader; return the data and a map path -> 1-based line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise YamlError(f"not valid YAML: {getattr(exc, 'problem', exc)}", mark.line + 1 if mark else None,
                        "(document)") from None
    lines: dict[Path_, int] = {}
    if root is None:
        return None, lines
    try:
        return _convert(root, (), lines), lines
    except yaml.YAMLError as exc:  # e.g. an unknown tag: refused, never constructed
        mark = getattr(exc, "problem_mark", None)
        raise YamlError(f"not allowed in a spec: {getattr(exc, 'problem', exc)}", mark.line + 1 if mark else None,
                        "(document)") from None


def _convert(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlError("mapping keys must be plain names", key_node.start_mark.line + 1, format_path(path))
            key = _scalar(key_node)
            if key in out:
                raise YamlError(f"duplicate key '{key}'", key_node.start_mark.line + 1, format_path(path + (key,)))
            out[key] = _convert(value_node, path + (key,), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, path + (i,), lines) for i, item in enumerate(node.value)]
    try:
        return _scalar(node)
    except yaml.YAMLError as exc:  # e.g. a python/* tag: refused, never constructed
        raise YamlError(f"not allowed in a spec: {getattr(exc, 'problem', exc)}", node.start_mark.line + 1,
                        format_path(path)) from None


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


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
