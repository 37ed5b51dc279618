"""Half precision: values rounded into the dtype, torch's missing kernels, half tolerances."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.backends import FunctionalBackend
from conformance.checks import NoKernel
from conformance.precision import PRECISIONS, casts, missing_kernel, quantize, representable_bounds
from conformance.runner import Runner, plan
from conformance.strategies import case_strategy
from reference_impl import shipped_specs


@settings(max_examples=200, deadline=None)
@given(st.floats(width=32, allow_nan=False, allow_infinity=False).filter(lambda v: abs(v) < 3.38e38))
def test_bfloat16_rounding_is_torchs(value):
    expected = torch.tensor([value], dtype=torch.float32).to(torch.bfloat16).to(torch.float64).item()
    assert quantize(np.array([value]), "bfloat16")[0] == expected


def test_values_beyond_a_half_dtype_saturate_and_infinities_stay():
    out = quantize(np.array([1e5, -1e5, np.inf, np.nan, 1.0]), "float16")
    assert out.dtype == np.float16
    assert out[:2].tolist() == [65504.0, -65504.0] and np.isinf(out[2]) and np.isnan(out[3]) and out[4] == 1.0


def test_representable_bounds_stay_inside_the_range():
    for dtype in ("float16", "bfloat16"):
        lo, hi = representable_bounds(1e-3, 1e3, dtype)
        assert 1e-3 <= lo < 1.1e-3 and 0.99e3 < hi <= 1e3
        assert quantize(np.array([lo, hi]), dtype).astype(np.float64).tolist() == [lo, hi]
    assert representable_bounds(-1e5, 1e5, "float16") == (-65504.0, 65504.0)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_drawn_half_cases_hold_values_of_the_dtype(dtype):
    spec = shipped_specs()["cross_entropy"]

    @settings(max_examples=40, deadline=None, database=None)
    @given(case_strategy(spec, dtype, "mean"))
    def check(case):
        for value in case.present_inputs().values():
            if value.dtype.kind == "f":
                assert np.array_equal(quantize(value, dtype), value, equal_nan=True)
                assert np.all(np.abs(value[np.isfinite(value)]) <= PRECISIONS[dtype].max)
        for v in case.params.values():
            if isinstance(v, float):
                assert float(quantize(v, dtype)) == v

    check()


def test_bfloat16_inputs_are_cast_by_the_worker_and_float16_ones_are_not():
    inputs = {"input": np.zeros(2, np.float32), "target": np.zeros(2, np.int64), "weight": None}
    assert casts(inputs, "bfloat16") == {"input": "bfloat16"}
    assert casts({"input": np.zeros(2, np.float16)}, "float16") == {}


def test_a_missing_kernel_is_recognised_for_the_checks_dtype_only():
    raised = "NotImplementedError: \"ctc_loss_cpu\" not implemented for 'Half'"
    assert missing_kernel(raised, "float16") == "ctc_loss_cpu"
    assert missing_kernel(raised, "bfloat16") is None  # a backend that casts to the wrong dtype still fails
    assert missing_kernel("RuntimeError: shape mismatch", "float16") is None
    assert NoKernel("k", raised).kernel == "k"


def _l1_without_half(input, target, reduction="mean", weight=None):
    if input.dtype == torch.float16:
        raise RuntimeError("\"l1_kernel\" not implemented for 'Half'")
    return torch.nn.functional.l1_loss(input, target, reduction=reduction, weight=weight)


def _l1_without_half_on_empty(input, target, reduction="mean", weight=None):
    if input.dtype == torch.float16 and input.numel() == 0:
        raise RuntimeError("\"l1_kernel\" not implemented for 'Half'")
    return torch.nn.functional.l1_loss(input, target, reduction=reduction, weight=weight)


def _records(fn):
    import types

    backend = FunctionalBackend(types.SimpleNamespace(l1_loss=fn), "no_half")
    specs = shipped_specs()
    cids = plan([specs["l1_loss"]], ["float16"], ["cpu"], ["forward"])[:1]
    with Runner(specs, backend, 20, 0, shrink=False) as runner:
        return runner.run(cids)


def test_no_kernel_on_every_example_is_unsupported_naming_the_kernel():
    (record,) = _records(_l1_without_half)
    assert record.status == "unsupported"
    assert "l1_kernel" in record.message and "not implemented for 'Half'" in record.message


def test_no_kernel_on_some_examples_passes_and_says_how_many():
    (record,) = _records(_l1_without_half_on_empty)
    assert record.status == "pass"
    assert "no float16 kernel on" in record.message


def test_every_spec_gives_a_bfloat16_tolerance_looser_than_float32():
    for spec in shipped_specs().values():
        for table in (spec.tolerance, spec.grad_tolerance):
            assert table["bfloat16"].rtol >= 4 * 2.0 ** -8
            if "float16" in table:
                assert table["float16"].rtol >= 4 * 2.0 ** -11 and table["float16"].rtol < table["bfloat16"].rtol
