"""The values of one input array of a case: class indices (ignored classes, terminated rows,
special parameter values mixed in) and floats (the domain's pool, ties with another input, zero
vectors, elements a gap below their row neighbour, simplex rows)."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from hypothesis import reject
from hypothesis import strategies as st

from loss_conformance.choices import Choices
from loss_conformance.domains import element_pool, everyday_sampler, weighted_values
from loss_conformance.fill import Fill
from loss_conformance.precision import PRECISIONS, quantize, storage_dtype
from loss_conformance_reference.model import InputSpec, Layout


def index_array(draw: st.DrawFn, fill: Fill, spec: InputSpec, shape: tuple[int, ...], dims: dict[str, Any],
                 params: dict[str, Any], interior: bool) -> np.ndarray:
    if spec.domain == "length":
        # A length of a sequence padded to ``bound``: the whole of it (the usual case, and the
        # one whose alignments are feasible) as often as anything shorter.
        bound = int(dims[spec.bound]) if spec.bound else 8
        shorter = list(range(min(spec.min, bound), bound + 1))
        return fill.array(np.int64, shape, Choices(shorter + [bound] * len(shorter)))
    high = int(dims[spec.classes]) - 1 if spec.classes else 8
    allowed = list(range(max(high, 0) + 1))
    if spec.exclude:
        excluded = {params[name] for name in spec.exclude}
        allowed = [c for c in allowed if c not in excluded]
        if not allowed:  # every class excluded: only an empty array can be drawn
            if int(np.prod(shape)):
                reject()
            return np.zeros(shape, dtype=np.int64)
    classes = Choices(allowed)
    if spec.terminator is not None and len(shape) > 0:
        return _terminated_rows(draw, fill, shape, classes, spec.terminator, interior)
    specials = [params[name] for name in spec.special]
    # Some special entries (an ignored target among kept ones) half of the time, all of them (every
    # target ignored) one time in eight.
    mode = draw(weighted_values((3, ["none"]), (4, ["some"]), (1, ["all"]))) \
        if specials and not interior else "none"
    if mode == "all":
        return np.full(shape, draw(st.sampled_from(specials)), dtype=np.int64)
    some = mode == "some" and int(np.prod(shape)) > 0
    if some:  # drawn before the values, as in float_array
        special = draw(st.sampled_from(specials))
        first = draw(st.integers(0, int(np.prod(shape)) - 1))
    values = fill.array(np.int64, shape, classes, lambda rng, size: rng.choice(classes.values, size=size))
    if some:
        values = np.where(_some_not_all(fill, shape, first), special, values)
    return values


def _some_not_all(fill: Fill, shape: tuple[int, ...], first: int) -> np.ndarray:
    """A mask with at least one True (at ``first``) and, where it has two elements or more, one False."""
    mask = np.array(fill.mask(shape), dtype=bool).reshape(-1)
    mask[first] = True
    if mask.all() and mask.size > 1:
        mask[(first + 1) % mask.size] = False
    return mask.reshape(shape)


def _terminated_rows(draw: st.DrawFn, fill: Fill, shape: tuple[int, ...], classes: Choices, terminator: int,
                     interior: bool) -> np.ndarray:
    """Index rows (last axis) read up to the first ``terminator``: k indices, then the terminator.

    k is 0 (the terminator first), the full row (no terminator at all) or anything between;
    the indices are sometimes distinct, sometimes repeated; after the terminator come either
    more terminators or, on purpose, values that a conforming backend must not read.
    """
    length = shape[-1]
    out = np.full(shape, terminator, dtype=np.int64)
    garbage = not interior and draw(st.booleans())
    # Half of what follows the terminator is the terminator again, half any class.
    after = Choices([terminator] * len(classes) + list(classes.values)) if garbage else Choices([terminator])
    rows = list(np.ndindex(*shape[:-1]))
    heads = [draw(_row_head(length)) for _ in rows]
    unique = [k <= len(classes) and draw(st.booleans()) for k in heads]
    for row, k, distinct in zip(rows, heads, unique):  # the values after every choice of structure
        head = fill.row(classes, k, distinct)
        tail = [terminator] + fill.row(after, length - k - 1, False) if k < length else []
        out[row] = head + tail
    return out


@lru_cache(maxsize=None)
def _row_head(length: int) -> st.SearchStrategy[int]:
    return st.one_of(st.just(0), st.just(length), st.integers(0, length))


def _vector_mask(fill: Fill, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean mask that selects whole vectors along the last axis (broadcast to ``shape``)."""
    rows = fill.mask(shape[:-1])
    return np.broadcast_to(rows[..., None], shape)


def _simplex(values: np.ndarray, axis: int) -> np.ndarray:
    """Normalise non-negative values along ``axis``; an all-zero slice becomes uniform."""
    total = values.sum(axis=axis, keepdims=True, dtype=np.float64)
    uniform = np.full_like(values, 1.0 / max(values.shape[axis], 1), dtype=np.float64)
    out = np.where(total > 0, values / np.where(total > 0, total, 1.0), uniform)
    return out.astype(values.dtype)


def float_array(draw: st.DrawFn, fill: Fill, spec: InputSpec, shape: tuple[int, ...], dtype: str, layout: Layout,
                 arrays: dict[str, np.ndarray | None], interior: bool) -> np.ndarray:
    narrow = PRECISIONS[dtype].narrow
    # A half dtype's values are drawn in float64 and rounded into it at the end (``quantize``):
    # a special value beyond its range saturates at its largest finite value.
    np_dtype = np.float64 if narrow else storage_dtype(dtype)
    other = arrays.get(spec.ties_with) if spec.ties_with and not interior else None
    # What to do is drawn before the values: a change to these choices (shrinking, Hypothesis'
    # mutations) then leaves the values' choices where they were (``loss_conformance.choices``).
    ties = other is not None and other.shape == shape
    whole = ties and len(shape) > 0 and draw(st.booleans())
    zero_vectors = spec.zero_vectors and not interior and len(shape) > 0 and draw(st.booleans())
    gap = draw(_row_gap(spec.row_gaps)) if spec.row_gaps and not interior and len(shape) > 0 and shape[-1] > 1 else None
    values = fill.array(np_dtype, shape, element_pool(spec.domain, dtype, interior), everyday_sampler(spec.domain))
    if spec.domain == "simplex" and spec.classes:
        pattern = layout.shapes.get(spec.name) or spec.shape or ()
        values = _simplex(values, list(pattern).index(spec.classes))
    if ties:
        # Elementwise ties, or (for vectors) whole vectors equal along the last axis.
        mask = _vector_mask(fill, shape) if whole else fill.mask(shape)
        values = np.where(mask, other, values).astype(np_dtype)
    if zero_vectors:
        values = np.where(_vector_mask(fill, shape), np_dtype(0.0), values).astype(np_dtype)
    values = quantize(values, dtype) if narrow else values
    if gap is not None:
        values = _row_gapped(values, fill.mask(shape), gap, dtype)
    return values


def _row_gapped(values: np.ndarray, mask: np.ndarray, gap: float, dtype: str) -> np.ndarray:
    """``values`` with each element of ``mask`` set to its left neighbour along the last axis (the
    row's last element for the first) minus ``gap``, where the dtype holds that difference exactly:
    a kernel computing in the dtype then sits on the same kink as the float64 oracle. (A rounded
    one would be a near-tie, on the kink in the dtype's arithmetic and beside it in float64.)"""
    below = np.roll(values, 1, axis=-1).astype(np.float64) - gap
    stored = quantize(below, dtype) if PRECISIONS[dtype].narrow else below.astype(values.dtype)
    exact = stored.astype(np.float64) == below
    return np.where(mask & exact, stored, values).astype(values.dtype)


@lru_cache(maxsize=None)
def _row_gap(gaps: tuple[float, ...]) -> st.SearchStrategy[float | None]:
    """None (no element moved) half the time, else one of ``gaps``."""
    return weighted_values((len(gaps), [None]), (len(gaps), gaps))
