"""Symbolic shapes: match concrete shapes against a layout's patterns, binding its dims."""
from __future__ import annotations

from typing import Mapping, Sequence

from loss_conformance_reference.model import Layout, Variant


def match_pattern(pattern: Sequence[str], shape: Sequence[int], dims: dict[str, object]) -> bool:
    """Bind the symbols of ``pattern`` (e.g. ``["N", "C", "*d"]``) to ``shape``; False on conflict."""
    variadic = [i for i, token in enumerate(pattern) if token.startswith("*")]
    fixed = len(pattern) - len(variadic)
    if (not variadic and len(shape) != fixed) or len(shape) < fixed:
        return False
    head = variadic[0] if variadic else len(pattern)
    tail = len(pattern) - head - (1 if variadic else 0)
    pairs = list(zip(pattern[:head], shape[:head]))
    if tail:
        pairs += list(zip(pattern[head + 1:], shape[len(shape) - tail:]))
    for token, size in pairs:
        if token.isdigit():
            if int(token) != size:
                return False
        elif dims.setdefault(token, size) != size:
            return False
    if variadic:
        group = tuple(shape[head:len(shape) - tail])
        if dims.setdefault(pattern[head], group) != group:
            return False
    return True


def match_layout(variant: Variant, shapes: Mapping[str, Sequence[int]]) -> tuple[Layout, dict[str, int]]:
    """The first layout of ``variant`` that the given input shapes fit, with its dims bound."""
    for layout in variant.layouts:
        dims: dict[str, object] = {}
        if all(match_pattern(pattern, shapes[name], dims) for name, pattern in layout.shapes.items()
               if name in shapes):
            return layout, {k: v for k, v in dims.items() if isinstance(v, int)}
    described = ", ".join(f"{k}{tuple(v)}" for k, v in shapes.items())
    raise ValueError(f"shapes {described} fit no layout of variant '{variant.name}'")


def concrete_shape(pattern: Sequence[str], dims: Mapping[str, object]) -> tuple[int, ...]:
    """The shape a pattern stands for once its dims are drawn (variadic groups are tuples)."""
    shape: list[int] = []
    for token in pattern:
        if token.isdigit():
            shape.append(int(token))
        elif token.startswith("*"):
            shape.extend(dims[token[1:]])  # type: ignore[arg-type]
        else:
            shape.append(int(dims[token]))  # type: ignore[arg-type]
    return tuple(shape)
