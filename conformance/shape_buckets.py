"""Sizes for a backend that compiles once per shape (JAX): few shapes per variant, each compiled
once and then reused by every example, check and reduction that meets it again.

A compilation costs a JAX backend about 0.1 to 0.5 s against a millisecond for a shape already
seen, so a run's time is its number of distinct shapes. Each dim takes three sizes (its minimum,
its smallest ordinary size, its maximum), and the dims take them together in few combinations
(``profiles``) rather than every one of their product.
"""
from __future__ import annotations

from typing import Any, Iterable

from hypothesis import strategies as st

from loss_conformance.domains import weighted_values
from loss_conformance_reference.model import Dim


def size_levels(low: int, high: int) -> tuple[int, int, int]:
    """A range's minimum, its smallest ordinary size (above the minimum, at least 2) and its
    maximum; the middle one is the maximum where the range has no other."""
    return low, min(max(low + 1, 2), high), high


def bucketed_size(low: int, high: int) -> st.SearchStrategy[int]:
    """One of the range's three levels, an ordinary one three draws in four (as ``size_strategy``
    takes ordinary sizes); shrinking goes to the minimum."""
    low, ordinary, high = size_levels(low, high)
    ordinary_sizes = sorted({ordinary, high} - {low})
    if not ordinary_sizes:
        return st.just(low)
    return weighted_values((1, [low]), (3, ordinary_sizes))


def profiles(dims: Iterable[Dim], interior: bool = False) -> tuple[list[dict[str, int]], ...]:
    """The combinations a bucketed case's sizes take, in three groups: every dim at its smallest
    ordinary size; each dim alone at its minimum, then each alone at its maximum; all at their
    maxima. A group holds no combination an earlier one holds.

    Each degenerate size (an empty batch, one class) comes on its own, so that a failure names
    it; and each dim differs from all the others in some profile, so that an axis read in place
    of another shows (with every dim at 2 it would not). Variadic groups are not in them: their
    ranks and axes are drawn apart (``bucketed_dims``)."""
    levels = {d.name: size_levels(*dim_range(d, interior)) for d in dims if not d.variadic}

    def profile(moved: dict[str, int]) -> dict[str, int]:
        return {name: moved.get(name, level[1]) for name, level in levels.items()}

    ordinary = [profile({})]
    apart = [profile({name: level[end]}) for end in (0, 2) for name, level in levels.items() if level[end] != level[1]]
    widest = [profile({name: level[2] for name, level in levels.items()})]
    seen: list[dict[str, int]] = []
    groups = []
    for group in (ordinary, apart, widest):
        groups.append([p for p in group if p not in seen])
        seen += groups[-1]
    return tuple(groups)


def bucketed_dims(dims: Iterable[Dim], interior: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Sizes for every dim from ``profiles``: the all-ordinary one a quarter of the time, one dim
    apart from the others half, the all-maxima one a quarter. A variadic group draws its rank and
    each axis's size from the group's levels, so its axes can still differ from each other."""
    dims = list(dims)
    groups = zip((1, 2, 1), profiles(dims, interior))
    chosen = weighted_values(*((weight, group) for weight, group in groups if group))
    variadic = [d for d in dims if d.variadic]
    if not variadic:
        return chosen.map(dict)

    @st.composite
    def draw_dims(draw: st.DrawFn) -> dict[str, Any]:
        sizes: dict[str, Any] = dict(draw(chosen))
        for dim in variadic:
            rank = draw(bucketed_size(dim.rank[0], dim.rank[1]))  # type: ignore[index]
            axis = bucketed_size(*dim_range(dim, interior))
            sizes[dim.name] = tuple(draw(axis) for _ in range(rank))
        return sizes

    return draw_dims()


def dim_range(dim: Dim, interior: bool) -> tuple[int, int]:
    """The dim's smallest and largest size; interior draws (gradcheck's) avoid empty batches."""
    low = max(dim.min, 1) if interior else dim.min
    return low, max(dim.max, low)
