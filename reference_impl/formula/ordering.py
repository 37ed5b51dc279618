"""Primitives that order values: ``sort`` and ``searchsorted``.

With ``cumsum`` they turn a sum over pairs of elements (every target against every class) into
sums over sorted prefixes, O(n log n) instead of a table of n x n pairs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from loss_conformance_reference.formula.context import ArrayContext


def sort(ctx: ArrayContext, x: Any, axis: int = -1, descending: bool = False) -> Any:
    """``x`` sorted along ``axis`` (stable; NaN last); in torch the gradient flows back to each
    element from the place it was sorted to."""
    return ctx.xp.sort(ctx.asarray(x), axis=axis, descending=bool(descending), stable=True)


def searchsorted(ctx: ArrayContext, sorted_: Any, values: Any, side: str = "left") -> Any:
    """For each of ``values``, the number of elements of ``sorted_`` (sorted ascending along the
    last axis) below it (``side='left'``) or at most it (``side='right'``), searched in the row of
    ``sorted_`` that the value's leading indices name (the leading axes broadcast). An index
    array, with no gradient; under a context that compares in a narrower dtype, both sides are
    rounded into it first, as every comparison is."""
    if side not in ("left", "right"):
        raise ValueError(f"searchsorted: side must be 'left' or 'right', not {side!r}")
    sorted_, values = ctx.asarray(sorted_), ctx.asarray(values)
    if ctx.compare_dtype is not None:
        sorted_, values = ctx.rounded(sorted_), ctx.rounded(values)
    if sorted_.dtype != values.dtype:  # an index against a score: compared as floats
        sorted_, values = (ctx.xp.astype(a, ctx.float_dtype) for a in (sorted_, values))
    lead = tuple(ctx.xp.broadcast_shapes(tuple(sorted_.shape[:-1]), tuple(values.shape[:-1])))
    sorted_ = ctx.xp.broadcast_to(sorted_, lead + tuple(sorted_.shape[-1:]))
    values = ctx.xp.broadcast_to(values, lead + tuple(values.shape[-1:]))
    if ctx.name == "torch":
        import torch

        return torch.searchsorted(sorted_.detach().contiguous(), values.detach().contiguous(), side=side)
    return _searchsorted_rows(sorted_, values, side)


def _searchsorted_rows(sorted_: Any, values: Any, side: str) -> Any:
    """NumPy's searchsorted row by row, in one stable sort of every row's elements and values
    together (ordered by row, value, then which comes first at a tie): a value's count is the
    number of its row's sorted elements merged before it."""
    width, count = sorted_.shape[-1], values.shape[-1]
    rows = int(np.prod(sorted_.shape[:-1], dtype=np.int64))
    keys = np.concatenate([np.reshape(sorted_, (rows, width)), np.reshape(values, (rows, count))], axis=1)
    # At a tie, 'right' merges the sorted element first (counted), 'left' the value first.
    is_value = np.concatenate([np.zeros(width, bool), np.ones(count, bool)])
    tiebreak = np.broadcast_to(is_value if side == "right" else ~is_value, keys.shape)
    row = np.broadcast_to(np.arange(rows)[:, None], keys.shape)
    order = np.lexsort((tiebreak.ravel(), keys.ravel(), row.ravel()))
    merged_sorted = np.cumsum(~np.broadcast_to(is_value, keys.shape).ravel()[order])
    counts = np.empty(rows * (width + count), np.int64)
    counts[order] = merged_sorted - row.ravel()[order] * width
    out = np.reshape(counts, (rows, width + count))[:, width:]
    return np.reshape(out, tuple(values.shape)).astype(np.int64)
