"""Arrays drawn from bytes (loss_conformance.choices): even, and as shrinkable as one choice per
element was."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from loss_conformance.choices import CHUNK_BYTES, Choices, draw_indices

QUIET = settings(database=None, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck),
                 max_examples=2000)


@pytest.mark.parametrize("options", [2, 5, 256, 257, 65536])
def test_indices_cover_every_option_evenly(options):
    seen: list[np.ndarray] = []

    @settings(QUIET, max_examples=200, phases=[Phase.generate])
    @given(st.data())
    def collect(data):
        seen.append(draw_indices(data.draw, (7, 11), options))

    collect()
    values = np.concatenate([a.ravel() for a in seen])
    assert values.min() >= 0 and values.max() < options
    assert all(a.shape == (7, 11) for a in seen)
    counts = np.bincount(values, minlength=options)
    if options <= 256:
        assert counts.min() > 0  # every option comes
        # Evenly: no option far above its share (Hypothesis' mutations copy chunks, and the zero
        # choice is tried on purpose, so 0 is somewhat above it).
        assert counts[1:].max() < 3 * values.size / options
    else:
        # Two bytes per element: every quarter of the range gets its share.
        quarters = np.bincount(values * 4 // options, minlength=4)
        assert quarters.min() > values.size / 8


def test_an_array_shrinks_towards_the_first_values():
    choices = Choices(list(range(10)))
    minimal = find(st.composite(lambda draw: choices.array(draw, (40,)))(), lambda a: a.max() >= 7,
                   settings=QUIET)
    assert sorted(minimal.tolist()) == [0] * 39 + [7]


def test_an_arrays_values_survive_its_size_shrinking():
    # The size is drawn first and the values after it: when the shrinker lowers the size, the
    # values' choices must still line up, or the first element would be replayed as 0 and the
    # size could not shrink while it must stay 200.
    @st.composite
    def sized(draw):
        size = draw(st.integers(1, 3 * CHUNK_BYTES))
        return size, Choices(list(range(256))).array(draw, (size,))

    size, values = find(sized(), lambda sv: sv[0] >= 20 and sv[1][0] == 200, settings=QUIET)
    assert size == 20
    assert values[0] == 200 and not values[1:].any()


def test_nothing_to_choose_from_is_refused():
    with pytest.raises(ValueError):
        Choices([])
