"""How an array's elements are drawn: one by one by Hypothesis for every ordinary case, or spread
from drawn pools by a seeded generator for the arrays of millions of elements that the ``large``
check passes (Hypothesis draws a few thousand choices per example, not millions)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conformance.domains import TINY

# Arrays up to this many elements are drawn element by element even in a large case (a weight
# vector, the lengths of a batch): Hypothesis' own draws are the better ones.
DRAWN_ELEMENTS = 4096
# Values drawn per pool: ordinary values that fill a large array, and values from the whole
# domain (ties, zeros, huge logits) planted among them.
ORDINARY_POOL, EXTREME_POOL = 256, 16


def _not_tiny(value: float) -> bool:
    return not 0 < abs(value) < TINY


class Fill:
    """Element by element, by Hypothesis."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def array(self, dtype: Any, shape: tuple[int, ...], elements: st.SearchStrategy[Any],
              ordinary: st.SearchStrategy[Any] | None = None) -> np.ndarray:
        """An array whose every element is drawn on its own from ``elements`` (``ordinary``: the
        domain's everyday values, which a large array is mostly made of).

        ``hnp.arrays`` otherwise fills part of the array with one repeated value, and an array of
        equal values hides exactly the bugs this suite hunts: a class axis or a label order mixed
        up, a weighted mean taken as a plain one. Equal values still come, from the domains' special
        values and from ``ties_with``."""
        return self.draw(hnp.arrays(dtype, shape, elements=elements, fill=st.nothing()))

    def mask(self, shape: tuple[int, ...]) -> np.ndarray:
        return self.draw(hnp.arrays(np.bool_, shape))

    def row(self, elements: st.SearchStrategy[int], size: int, unique: bool, allowed: range | list[int]) -> list[int]:
        """``size`` indices from ``elements`` (all of them in ``allowed``), distinct when ``unique``."""
        return self.draw(st.lists(elements, min_size=size, max_size=size, unique=unique))


class PooledFill(Fill):
    """Large arrays from pools: Hypothesis draws a pool of ordinary values, a pool of values from
    the whole domain and a seed; NumPy's generator (PCG64, the same stream on every platform)
    spreads the ordinary values over the array and plants the others at its ends, at block
    boundaries (every power of two from 2^10) and at random places, where a blocked or chunked
    kernel's tail handling goes wrong. Small arrays are drawn by Hypothesis as always."""

    def __init__(self, draw: st.DrawFn) -> None:
        super().__init__(draw)
        self.rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="fill seed"))

    def array(self, dtype: Any, shape: tuple[int, ...], elements: st.SearchStrategy[Any],
              ordinary: st.SearchStrategy[Any] | None = None) -> np.ndarray:
        size = math.prod(shape)
        if size <= DRAWN_ELEMENTS:
            return super().array(dtype, shape, elements)
        # Everyday values keep clear of magnitudes below TINY, as the full domains do: 1 - 2^-24
        # rounds to 1 in float32, and a hinge at 1 + x - y with x = -2^-24 then sits on its
        # kink for every correct float32 kernel and off it for the float64 oracle (repeated over
        # millions of pairs, the gradient moves by percents).
        everyday = ordinary.filter(_not_tiny) if ordinary is not None else elements
        pool = self.draw(hnp.arrays(dtype, (ORDINARY_POOL,), elements=everyday, fill=st.nothing()))
        out = self.rng.choice(pool, size=size)
        planted = self.draw(st.sampled_from([0, 1, 64, 4096]), label="planted values")
        if ordinary is not None and planted:
            extremes = self.draw(hnp.arrays(dtype, (EXTREME_POOL,), elements=elements, fill=st.nothing()))
            blocks = [2**k + offset for k in range(10, size.bit_length()) for offset in (-1, 0)]
            where = np.concatenate([[0, size - 1], blocks, self.rng.integers(0, size, planted)]).astype(np.int64)
            out[where] = self.rng.choice(extremes, size=where.size)
        return out.reshape(shape)

    def mask(self, shape: tuple[int, ...]) -> np.ndarray:
        if math.prod(shape) <= DRAWN_ELEMENTS:
            return super().mask(shape)
        share = self.draw(st.sampled_from([0.0, 0.001, 0.5, 1.0]), label="mask share")
        return self.rng.random(shape) < share

    def row(self, elements: st.SearchStrategy[int], size: int, unique: bool, allowed: range | list[int]) -> list[int]:
        if size <= DRAWN_ELEMENTS:
            return super().row(elements, size, unique, allowed)
        if unique:
            return [int(v) for v in self.rng.permutation(np.asarray(allowed))[:size]]
        pool = self.draw(hnp.arrays(np.int64, (ORDINARY_POOL,), elements=elements, fill=st.nothing()))
        return [int(v) for v in self.rng.choice(pool, size=size)]
