"""Memory layouts: the same logical values laid out in storage the way real callers pass them.

A kernel that assumes its inputs are fresh, contiguous tensors at storage offset 0 is right on
every tensor a test builds with ``torch.tensor`` and wrong on a transposed view, a slice, a
``sum().backward()`` gradient (expanded, stride 0) or a channels-last image. A ``MemoryLayout``
is plain data (it crosses to the worker process and into the report); ``materialise`` builds a
tensor with exactly that layout, as a leaf, so that gradients to it are what autograd gives.

Storage the logical tensor does not cover (before an offset, between strided elements) holds
a sentinel (NaN, or an index no loss accepts), so a kernel that reads it gives itself away.
"""
from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Iterable

import numpy as np
import torch
from hypothesis import strategies as st

from loss_conformance.domains import weighted_values
from loss_conformance_reference.model import InputSpec, Layout, Variant

CONTIGUOUS = "contiguous"
KINDS = (CONTIGUOUS, "permuted", "offset", "strided", "expanded", "channels_last")
INDEX_SENTINEL = 2**31 - 1


@dataclass(frozen=True)
class MemoryLayout:
    """``permuted``/``channels_last``: storage holds the axes in ``perm`` order; ``offset``: the
    values start ``offset`` elements into storage; ``strided``: every ``step``-th element along
    ``axis``; ``expanded``: stride 0 along ``axis`` (the values repeat along it)."""

    kind: str = CONTIGUOUS
    perm: tuple[int, ...] = ()
    offset: int = 0
    step: int = 1
    axis: int = 0

    def describe(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if k == "kind" or v != getattr(CONTIGUOUS_LAYOUT, k)}

    def expression(self) -> str:
        """Python source that rebuilds this layout (for reproduction snippets)."""
        fields = ", ".join(f"{k}={tuple(v) if isinstance(v, list) else v!r}" for k, v in self.describe().items())
        return f"MemoryLayout({fields})"


CONTIGUOUS_LAYOUT = MemoryLayout()


def layout_strategy(shape: tuple[int, ...], expandable: Iterable[int] = ()) -> st.SearchStrategy[MemoryLayout]:
    """A layout for a tensor of ``shape``: each kind the shape allows as often as any other,
    contiguous among them. ``expandable`` lists the axes along which the values may be made to
    repeat (a stride-0 input), which the caller knows from the input's domain."""
    return _layouts(tuple(shape), tuple(expandable))


@lru_cache(maxsize=4096)
def _layouts(shape: tuple[int, ...], expandable: tuple[int, ...]) -> st.SearchStrategy[MemoryLayout]:
    # Every layout of a shape, listed once per shape and drawn in one choice: building and
    # validating strategies per draw cost a fifth of a search, nested strategies most of the rest.
    ndim, numel = len(shape), int(np.prod(shape, dtype=np.int64))
    kinds: list[list[MemoryLayout]] = [[CONTIGUOUS_LAYOUT], [MemoryLayout("offset", offset=k) for k in (1, 2, 3)]]
    moved = [a for a in range(ndim) if shape[a] > 1]  # reordering axes of size 1 changes nothing
    if len(moved) >= 2:
        kinds.append([MemoryLayout("permuted", perm=p) for p in itertools.permutations(range(ndim))
                      if _reorders(p, moved)])
    if ndim >= 1 and numel > 0:
        kinds.append([MemoryLayout("strided", step=step, axis=axis) for step in (2, 3) for axis in range(ndim)])
    axes = [a for a in expandable if 0 <= a < ndim and shape[a] > 1]
    if axes:
        kinds.append([MemoryLayout("expanded", axis=a) for a in axes])
    if ndim in (4, 5) and _reorders((0, *range(2, ndim), 1), moved):
        kinds.append([MemoryLayout("channels_last", perm=(0, *range(2, ndim), 1))])
    return weighted_values(*((1, layouts) for layouts in kinds))


def draw_layouts(draw: st.DrawFn, variant: Variant, layout: Layout, arrays: dict[str, np.ndarray | None],
                  interior: bool) -> dict[str, MemoryLayout]:
    """A memory layout for every input passed to the backend (see ``loss_conformance.layouts``).

    An expanded (stride-0) layout makes the values repeat along its axis, so it is drawn only
    along axes where repeated values stay in the input's domain, never for an input others are
    derived from, and never for finite differences (gradcheck cannot perturb a stride-0 input).
    """
    sources = {n for s in variant.inputs.values() if s.derive is not None for n in s.derive.names}
    out: dict[str, MemoryLayout] = {}
    for name, ispec in variant.inputs.items():
        values = arrays.get(name)
        if values is None or ispec.internal:
            continue
        # Only where another axis still varies: an input of one repeated value hides a mixed-up
        # class axis or weighted mean as surely as it tests a stride of 0.
        varied = sum(size > 1 for size in values.shape) >= 2
        expandable = _repeatable_axes(ispec, layout, values.ndim) if varied and not interior and name not in sources \
            else ()
        chosen = draw(layout_strategy(values.shape, expandable), label=f"layout of {name}")
        if chosen.kind == "expanded":
            arrays[name] = repeat_along(values, chosen)
        if chosen.kind != "contiguous":
            out[name] = chosen
    return out


def _repeatable_axes(spec: InputSpec, layout: Layout, ndim: int) -> tuple[int, ...]:
    """Axes along which an input's values may all be equal without leaving its domain: not the
    class axis of a simplex (its values must sum to 1 along it), not the rows of indices read
    up to a terminator."""
    axes = set(range(ndim))
    if spec.terminator is not None and ndim:
        axes.discard(ndim - 1)
    if spec.domain == "simplex" and spec.classes:
        pattern = list(layout.shapes.get(spec.name) or spec.shape or ())
        if spec.classes in pattern:
            axes.discard(pattern.index(spec.classes))
    return tuple(sorted(axes))


def _reorders(perm: Iterable[int], moved: list[int]) -> bool:
    order = [a for a in perm if a in moved]
    return order != sorted(order)


def repeat_along(values: np.ndarray, layout: MemoryLayout) -> np.ndarray:
    """The values an expanded layout can hold: the first slice along its axis, repeated."""
    if layout.kind != "expanded":
        return values
    first = np.take(values, [0], axis=layout.axis)
    return np.ascontiguousarray(np.broadcast_to(first, values.shape))


def materialise(values: torch.Tensor, layout: MemoryLayout | None) -> torch.Tensor:
    """A leaf tensor equal to ``values`` (same dtype and device) laid out as ``layout`` says."""
    if layout is None or layout.kind == CONTIGUOUS:
        return values
    values = values.detach()
    shape = tuple(values.shape)
    if layout.kind in ("permuted", "channels_last"):
        stored = values.permute(layout.perm).contiguous()
        return _leaf(stored, stored.permute(_inverse(layout.perm)).stride(), 0, shape)
    if layout.kind == "offset":
        buffer = torch.full((layout.offset + values.numel(),), _sentinel(values), dtype=values.dtype,
                            device=values.device)
        buffer[layout.offset:] = values.reshape(-1)
        return _leaf(buffer, _contiguous_strides(shape), layout.offset, shape)
    if layout.kind == "strided":
        wide = list(shape)
        wide[layout.axis] *= layout.step
        buffer = torch.full(wide, _sentinel(values), dtype=values.dtype, device=values.device)
        index = [slice(None)] * len(shape)
        index[layout.axis] = slice(None, None, layout.step)
        buffer[tuple(index)] = values
        strides = list(buffer.stride())
        strides[layout.axis] *= layout.step
        return _leaf(buffer, tuple(strides), 0, shape)
    if layout.kind == "expanded":
        first = values.narrow(layout.axis, 0, 1)
        if not torch.allclose(first.expand(shape), values, rtol=0, atol=0, equal_nan=True):
            raise ValueError(f"values vary along axis {layout.axis}: they cannot be laid out with stride 0")
        base = first.contiguous()
        strides = list(base.stride())
        strides[layout.axis] = 0
        return _leaf(base, tuple(strides), 0, shape)
    raise ValueError(f"unknown memory layout '{layout.kind}'")


def _leaf(storage_of: torch.Tensor, stride: tuple[int, ...], offset: int, shape: tuple[int, ...]) -> torch.Tensor:
    # ``set_`` makes a new leaf over existing storage; a view (``as_strided``) would not be a leaf.
    out = torch.empty(0, dtype=storage_of.dtype, device=storage_of.device)
    return out.set_(storage_of.untyped_storage(), offset, shape, stride)


def _sentinel(values: torch.Tensor) -> float | int:
    if values.is_floating_point():
        return float("nan")
    return False if values.dtype == torch.bool else INDEX_SENTINEL


def _contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _inverse(perm: tuple[int, ...]) -> tuple[int, ...]:
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return tuple(out)
