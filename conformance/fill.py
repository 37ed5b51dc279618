"""How an array's elements are drawn: one by one by Hypothesis for every ordinary case, or spread
from drawn pools by a seeded generator for the arrays of millions of elements that the ``large``
check passes (Hypothesis draws a few thousand choices per example, not millions)."""
from __future__ import annotations

import math
from typing import Any, Callable, Union

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from loss_conformance.choices import Choices
from loss_conformance.domains import Pool

# Arrays up to this many elements are drawn element by element even in a large case (a weight
# vector, the lengths of a batch): Hypothesis' own draws are the better ones.
DRAWN_ELEMENTS = 4096
# Values Hypothesis draws from the whole domain for a large array, planted among its everyday ones.
PLANTED_POOL = 64
# A sampler of everyday values: (generator, count) -> float64 or index array.
Sampler = Callable[[np.random.Generator, int], np.ndarray]
# What an array's elements come from: a domain's pool, a finite list, or any strategy.
Elements = Union[Pool, Choices, st.SearchStrategy[Any]]
_BOOLEANS = Choices([False, True])


class Fill:
    """Element by element, by Hypothesis."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw

    def array(self, dtype: Any, shape: tuple[int, ...], elements: Elements,
              everyday: Sampler | None = None) -> np.ndarray:
        """An array whose every element is drawn on its own from ``elements``: a domain's pool, a
        finite list of choices (16 to 32 elements to a Hypothesis choice, ``loss_conformance.choices``)
        or a strategy (``everyday``: a sampler of the domain's everyday values, which a large array is
        mostly made of).

        ``hnp.arrays`` otherwise fills part of the array with one repeated value, and an array of
        equal values hides exactly the bugs this suite hunts: a class axis or a label order mixed
        up, a weighted mean taken as a plain one. Equal values still come, from the domains' special
        values and from ``ties_with``."""
        if isinstance(elements, (Pool, Choices)):
            return elements.array(self.draw, shape).astype(dtype)
        return self.draw(hnp.arrays(dtype, shape, elements=elements, fill=st.nothing()))

    def mask(self, shape: tuple[int, ...]) -> np.ndarray:
        return _BOOLEANS.array(self.draw, shape)

    def row(self, choices: Choices, size: int, unique: bool) -> list[int]:
        """``size`` indices from ``choices``, distinct when ``unique``."""
        if unique:
            return self.draw(st.lists(st.sampled_from(choices.distinct), min_size=size, max_size=size, unique=True))
        return [int(v) for v in choices.array(self.draw, (size,))]


class PooledFill(Fill):
    """Large arrays from a seeded generator: NumPy's (PCG64, the same stream on every platform)
    spreads the domain's everyday values over the array, evenly and with no exact ties among
    them, and plants values that Hypothesis draws from the whole domain (ties, zeros, huge
    logits) at the array's ends, at block boundaries (every power of two from 2^10, and the
    element before it) and at random places, where a blocked or chunked kernel's tail handling
    goes wrong. Hypothesis draws the seed and the planted values; small arrays it draws as always.

    The bulk is not Hypothesis' to draw: its simplest example, the first it tries, is all zeros,
    and a large check runs one example."""

    def __init__(self, draw: st.DrawFn) -> None:
        super().__init__(draw)
        self.rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="fill seed"))

    def array(self, dtype: Any, shape: tuple[int, ...], elements: Elements,
              everyday: Sampler | None = None) -> np.ndarray:
        size = math.prod(shape)
        if everyday is None or size == 0:  # values with no sampler (lengths): Hypothesis', or a pool of them
            if size <= DRAWN_ELEMENTS:
                return super().array(dtype, shape, elements)
            pool = super().array(dtype, (PLANTED_POOL,), elements)
            return self.rng.choice(pool, size=size).reshape(shape)
        # Sampled at every size, a large case's small arrays too (the 437 targets beside logits of
        # 437 x 40000): Hypothesis' first draw of them would be all class 0.
        out = np.asarray(everyday(self.rng, size)).astype(dtype)
        planted = super().array(dtype, (PLANTED_POOL,), elements)
        count = min(self.draw(st.sampled_from([1, 64, 4096]), label="planted values"), max(1, size // 16))
        blocks = [i for k in range(10, size.bit_length()) for i in (2**k - 1, 2**k) if i < size]
        where = np.concatenate([[0, size - 1], blocks, self.rng.integers(0, size, count)]).astype(np.int64)
        out[where] = self.rng.choice(planted, size=where.size)
        return out.reshape(shape)

    def mask(self, shape: tuple[int, ...]) -> np.ndarray:
        if math.prod(shape) <= DRAWN_ELEMENTS:
            return super().mask(shape)
        share = self.draw(st.sampled_from([0.0, 0.001, 0.5, 1.0]), label="mask share")
        return self.rng.random(shape) < share

    def row(self, choices: Choices, size: int, unique: bool) -> list[int]:
        if size <= DRAWN_ELEMENTS:
            return super().row(choices, size, unique)
        if unique:
            return [int(v) for v in self.rng.permutation(np.asarray(choices.distinct))[:size]]
        pool = choices.array(self.draw, (PLANTED_POOL,))
        return [int(v) for v in self.rng.choice(pool, size=size)]
