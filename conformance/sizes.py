"""Sizes for the ``large`` check, where kernels change strategy: reductions over millions of
elements (blocked and chunked accumulation, tails, 32-bit offsets), class counts of 32768 and more,
spatial ranks up to 5.

The sizes come from the spec's dims alone: a dim's ``large`` entry gives its range there (a class
count), a rank range for a variadic group (spatial ranks), or ``fill``: the size that brings the
largest input of the drawn layout to the element target. Dims without one keep their ordinary
range, empty sizes excluded.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

from hypothesis import strategies as st

from loss_conformance_reference.model import Dim, LargeSize, Layout, LossSpec, Variant
from loss_conformance_reference.shapes import concrete_shape

# The large check's inputs hold at least ELEMENT_TARGET elements (the largest of them, where a
# dim fills), plus TARGET_OFFSET, plus an even number up to TARGET_SPREAD: a kernel's tail (the
# elements past its last full block) is where blocked reductions go wrong, and the offset,
# 0b1010...1011, leaves a third to two thirds of a block past the last full one for every block
# of 2^k elements up to 2^20, from the simplest draw (a tail of one element would change a sum
# by less than any tolerance sees).
ELEMENT_TARGET = 2**24
TARGET_OFFSET = 0xAAAAB
TARGET_SPREAD = 2**19


def large_layouts(spec: LossSpec, variant: Variant) -> tuple[Layout, ...]:
    """The layouts of ``variant`` that use the dim that fills (an unbatched ``[C]`` holds 32768
    elements where ``[N, C]`` holds 2^24), else those that use any large dim, else all of them."""
    fills = {name for name, dim in spec.dims.items() if dim.large is not None and dim.large.fill}
    large = {name for name, dim in spec.dims.items() if dim.large is not None}
    for wanted in (fills, large):
        chosen = tuple(lay for lay in variant.layouts if wanted & _symbols(_patterns(variant, lay)))
        if chosen:
            return chosen
    return variant.layouts


def large_dims_strategy(spec: LossSpec, variant: Variant, layout: Layout) -> st.SearchStrategy[dict[str, Any]]:
    """Dims for one large case of ``variant`` in ``layout``."""
    patterns = _patterns(variant, layout)

    @st.composite
    def draw_dims(draw: st.DrawFn) -> dict[str, Any]:
        target = ELEMENT_TARGET + TARGET_OFFSET + 2 * draw(st.integers(0, TARGET_SPREAD // 2), label="element target")
        dims: dict[str, Any] = {}
        filling: tuple[Dim, int | None] | None = None
        for dim in spec.dims.values():
            large = dim.large or LargeSize()
            low, high = (large.min, large.max) if large.min is not None else (max(dim.min, 1), max(dim.max, 1))
            sizes = st.integers(low, high)  # type: ignore[arg-type]
            rank = draw(st.integers(*(large.rank or dim.rank))) if dim.rank is not None else None
            if large.fill:
                filling = (dim, rank)
            elif rank is not None:
                dims[dim.name] = tuple(draw(sizes) for _ in range(rank))
            else:
                dims[dim.name] = draw(sizes)
        if filling is not None:
            dim, rank = filling
            dims[dim.name] = fill_size(dim.name, rank, dims, patterns, target)
            if dims[dim.name] is None:  # the layout does not use the filling dim
                low, high = max(dim.min, 1), max(dim.max, 1)
                dims[dim.name] = tuple(draw(st.integers(low, high)) for _ in range(rank or 0)) \
                    if rank is not None else draw(st.integers(low, high))
        return dims

    return draw_dims()


def fill_size(name: str, rank: int | None, dims: dict[str, Any], patterns: Iterable[tuple[str, ...]],
              target: int) -> Any:
    """The smallest odd size of dim ``name`` (for a variadic group of ``rank`` axes: equal sizes,
    the last one trimmed) at which the largest of ``patterns`` holds ``target`` elements; None
    where no pattern uses the dim. Odd, so that no power of two divides the count of elements
    more than the other dims make it: a reduction in blocks of 2^k has a partial last block."""
    patterns = [p for p in patterns if name in {t.lstrip("*") for t in p}]
    if not patterns:
        return None

    def size(value: Any) -> int:
        return max(math.prod(concrete_shape(p, {**dims, name: value})) for p in patterns)

    if rank is None:
        return _smallest_odd(lambda s: size(s) >= target, target)
    if rank == 0:
        return ()
    side = _smallest_odd(lambda a: size((a,) * rank) >= target, target)
    last = _smallest_odd(lambda b: size((side,) * (rank - 1) + (b,)) >= target, side)
    return (side,) * (rank - 1) + (last,)


def _smallest_odd(reaches: Any, high: int) -> int:
    """The smallest odd n in [1, high] for which ``reaches(n)`` holds (monotone), or the largest."""
    low, top = 0, (high - 1) // 2  # n = 2 k + 1
    while low < top:
        mid = (low + top) // 2
        if reaches(2 * mid + 1):
            top = mid
        else:
            low = mid + 1
    return 2 * low + 1


def _patterns(variant: Variant, layout: Layout) -> list[tuple[str, ...]]:
    """The shape patterns of the inputs in ``layout`` (those fixed by the input itself too)."""
    return list(layout.shapes.values()) + [i.shape for i in variant.inputs.values()
                                           if i.shape is not None and i.name not in layout.shapes]


def _symbols(patterns: Iterable[tuple[str, ...]]) -> set[str]:
    return {token.lstrip("*") for pattern in patterns for token in pattern if not token.isdigit()}
