"""Sizes for backends that compile once per shape (``conformance.shape_buckets``): few shapes,
and still every degenerate size and every dim apart from the others."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from loss_conformance.shape_buckets import bucketed_dims, bucketed_size, profiles
from loss_conformance_reference.loader import load_specs

SPECS = load_specs()
CASES = settings(max_examples=300, database=None, derandomize=True, phases=[Phase.generate],
                 suppress_health_check=list(HealthCheck))


def _collect(strategy) -> list:
    drawn = []

    @CASES
    @given(strategy)
    def collect(value) -> None:
        drawn.append(value)

    collect()
    return drawn


def test_bucketed_sizes_take_the_minimum_the_smallest_ordinary_size_and_the_maximum():
    assert set(_collect(bucketed_size(0, 5))) == {0, 2, 5}
    assert set(_collect(bucketed_size(2, 4))) == {2, 3, 4}
    assert set(_collect(bucketed_size(1, 1))) == {1}


@pytest.mark.parametrize("loss", sorted(SPECS))
def test_each_dim_reaches_its_ends_and_differs_from_every_other_in_some_profile(loss):
    dims = [d for d in SPECS[loss].dims.values() if not d.variadic]
    found = [p for group in profiles(SPECS[loss].dims.values()) for p in group]
    assert len(found) <= 2 + 2 * len(dims)  # against 3 ** len(dims) independent levels
    for dim in dims:
        sizes = {p[dim.name] for p in found}
        assert {dim.min, dim.max} <= sizes and len(sizes) == min(3, dim.max - dim.min + 1)
    for a, b in itertools.combinations(dims, 2):
        assert any(p[a.name] != p[b.name] for p in found), (a.name, b.name)


def test_every_profile_is_drawn_and_nothing_else():
    dims = SPECS["ctc_loss"].dims.values()
    found = [p for group in profiles(dims) for p in group]
    drawn = [{k: v for k, v in d.items() if k != "K"} for d in _collect(bucketed_dims(dims))]
    assert all(d in found for d in drawn)
    assert all(p in drawn for p in found)


def test_interior_profiles_have_no_empty_batch():
    found = [p for group in profiles(SPECS["ctc_loss"].dims.values(), interior=True) for p in group]
    assert min(p["N"] for p in found) == 1
