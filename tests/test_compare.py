"""``compare``'s quick verdict (NumPy, no ``assert_close``) is torch's: it passes exactly the outputs
that ``torch.isclose(..., equal_nan=True)`` finds close everywhere, and its rounding into float32 is
torch's."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from loss_conformance.compare import _plainly_close, compare, rounded
from loss_conformance.execution import describe
from loss_conformance_reference.model import Tolerance

# Values that sit on every edge isclose has: zeros, NaN, infinities, the largest finite values
# (whose difference overflows), and neighbours a few ULP apart.
_EDGES = st.sampled_from([0.0, -0.0, 1.0, -1.0, 1.0 + 2**-52, 1.0 + 2**-20, 1e-300, np.nan, np.inf, -np.inf,
                          1.7e308, -1.7e308, 3.0, 3.0000001])
_VALUES = st.one_of(_EDGES, st.floats(allow_nan=True, allow_infinity=True))
_TOLS = st.sampled_from([(0.0, 0.0), (1.3e-6, 1e-5), (1e-7, 1e-7), (0.5, 0.0), (0.0, 2.0)])


@settings(max_examples=400, deadline=None)
@given(pair=st.integers(0, 9).flatmap(lambda n: st.tuples(hnp.arrays(np.float64, n, elements=_VALUES),
                                                          hnp.arrays(np.float64, n, elements=_VALUES))),
       tol=_TOLS, same=st.booleans())
def test_the_quick_verdict_is_torch_isclose_everywhere(pair, tol, same):
    got, want = pair
    if same:  # half of the cases close by construction: the verdict's passing side gets examples too
        want = got.copy()
    rtol, atol = tol
    expected = bool(torch.isclose(torch.from_numpy(got), torch.from_numpy(want), rtol=rtol, atol=atol,
                                  equal_nan=True).all())
    assert _plainly_close(got, want, rtol, atol) == expected


@settings(max_examples=200, deadline=None)
@given(values=hnp.arrays(np.float64, st.integers(0, 6), elements=_VALUES))
def test_rounding_into_float32_and_float64_is_torchs(values):
    for dtype, torch_dtype in (("float32", torch.float32), ("float64", torch.float64)):
        want = torch.from_numpy(values).to(torch_dtype).to(torch.float64).numpy()
        np.testing.assert_array_equal(rounded(values, dtype), want)


@pytest.mark.parametrize("n", [3, 5000])
def test_a_difference_is_still_reported_with_assert_closes_message(n):
    expected = np.linspace(1.0, 2.0, n)
    actual = expected.copy()
    actual[-1] += 0.5
    message = compare(describe(torch.from_numpy(actual)), expected, "float64", "cpu", Tolerance(1e-7, 1e-7))
    assert message is not None and "values differ" in message and "Mismatched elements: 1 / " in message
    assert compare(describe(torch.from_numpy(expected)), expected, "float64", "cpu", Tolerance(1e-7, 1e-7)) is None


def test_nan_where_the_oracle_has_a_number_is_a_difference():
    expected = np.array([1.0, 2.0])
    actual = torch.tensor([1.0, float("nan")], dtype=torch.float64)
    assert compare(describe(actual), expected, "float64", "cpu", Tolerance(1.0, 1.0)) is not None

