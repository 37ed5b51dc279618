"""The values of one input array (``conformance/input_arrays.py``): elements a gap exactly below
their row neighbour (``row_gaps``), where hinges of one score against another of its row tie."""
from __future__ import annotations

import numpy as np
import pytest

from loss_conformance.input_arrays import _row_gapped
from tests.test_strategies import search


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_a_score_exactly_a_margin_below_another_of_its_row(dtype):
    # row_gaps: [1.0] on multilabel_margin_loss's input: a hinge 1 - (a - b) exactly at its kink,
    # away from 0 and from the constants every array may hold
    def tied(c):
        x = c.inputs["input"].astype(np.float64)
        return x.ndim and x.shape[-1] > 1 and np.any((np.roll(x, 1, axis=-1) - x == 1.0) & (np.abs(x) > 3.0))

    case = search("multilabel_margin_loss", tied, dtype=dtype)
    assert case.inputs["input"].dtype == np.dtype(dtype)


def test_a_gap_the_dtype_cannot_hold_moves_no_element():
    values = np.array([[3.0, 2 ** -30, 2.5]], dtype=np.float32)
    moved = _row_gapped(values, np.ones((1, 3), dtype=bool), 1.0, "float32")
    # each element its left neighbour minus 1 (the first's is the last): 2.5 - 1, 3 - 1, and
    # 2^-30 - 1, which float32 cannot hold, so the last element stays
    assert moved.dtype == np.float32
    assert moved.tolist() == [[1.5, 2.0, 2.5]]
