"""Half precision: values rounded into the dtype, torch's missing kernels, half tolerances."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loss_conformance.backends import FunctionalBackend
from loss_conformance.checks import NoKernel
from loss_conformance.precision import PRECISIONS, casts, missing_kernel, quantize, representable_bounds
from loss_conformance.planning import plan
from loss_conformance.runner import Runner
from loss_conformance.strategies import case_strategy
from loss_conformance_reference import shipped_specs


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


def test_a_half_gradient_near_a_kink_may_match_a_neighbour_element_by_element():
    from loss_conformance.checks import nearest_candidate
    point = np.array([[-0.578, -0.578], [0.0, 0.0]])
    moved = np.array([[-0.1, -0.2], [-1.0, -0.9995]])  # every row moves, the last across its hinge
    got = np.array([[-0.578, -0.578], [-1.0, -1.0]])
    assert np.array_equal(nearest_candidate(got, [point, moved]), [[-0.578, -0.578], [-1.0, -0.9995]])
    assert np.isnan(nearest_candidate(np.array([np.nan]), [np.array([0.0]), np.array([np.nan])])[0])


def test_a_hinge_rounded_onto_its_kink_in_one_row_of_a_batch_is_no_failure():
    # bfloat16, seed 9: anchor (0, 512, 0), positive (0, 2, 0), negative 0, margin 1: the hinge
    # 1 + 510 - 512 = -1 is 512 - 512 = 0 in bfloat16 (511 rounds to 512), where torch's clamp_min
    # passes the gradient; moving an input by 4u * 512 = 8 puts that row on the active side, the
    # others (all-zero rows) stay where they are at the point.
    spec = shipped_specs()["triplet_margin_with_distance_loss"]
    with Runner({spec.id: spec}, "torch.nn.functional", 30, 9) as runner:
        records = runner.run(plan([spec], ["bfloat16"], ["cpu"], ["backward"]))
    assert all(r.status in ("pass", "known_deviation") for r in records), [(r.reduction, r.message[:300]) for r in records]


class _Fixed:
    """A Hypothesis data object that answers each draw with the next of ``values``."""

    def __init__(self, *values):
        self.values = list(values)

    def draw(self, strategy, label=None):
        return self.values.pop(0)


@pytest.mark.parametrize("params, inputs, cotangent", [
    # l1, margin 1: 1 + 5e-6 - 1.000977 is -0.00097, but 1 + 2^-10 is 1 in bfloat16: torch's hinge
    # is active, at the tie d(a, n) == d(p, n) that a == p keeps (a margin moved by the rounding)
    ({"reduction": "sum", "distance_function": "l1_distance", "margin": 1.0, "swap": True},
     ([0.0] * 5, [0.0] * 5, [0.0, 2.0 ** -10, 1.0, 0.0, 0.0]), -1.0),
    # cosine: d(a, n) = 1 (a zero anchor), d(p, n) = 1.00195, which is 1 in bfloat16: a tie to the
    # kernel, where the minimum's gradient is split
    ({"reduction": "mean", "distance_function": "cosine_distance", "swap": True},
     ([0.0] * 4, [-5.25, 0.0, -254.0, -1.0], [0.0, 0.5, 2.0 ** -10, 0.0]), -0.25),
])
def test_a_zero_anchor_under_swap_in_bfloat16_is_no_failure(params, inputs, cotangent):
    from loss_conformance.checks import CheckContext, check_backward
    from loss_conformance.case import Case
    from loss_conformance.layouts import MemoryLayout
    from loss_conformance.oracle import Oracle
    from loss_conformance.timing import Timings
    spec = shipped_specs()["triplet_margin_with_distance_loss"]
    arrays = {n: quantize(np.array(v), "bfloat16") for n, v in zip(("anchor", "positive", "negative"), inputs)}
    case = Case(spec.id, "default", "unbatched", "bfloat16", arrays, params, dims={"D": len(inputs[0])})
    with Runner({spec.id: spec}, "torch.nn.functional", 5, 0) as runner:
        ctx = CheckContext(spec, runner.backend, Oracle(spec, "cpu", Timings()), "bfloat16", "cpu", params["reduction"],
                           Timings())
        check_backward(ctx, case, _Fixed(MemoryLayout(), np.array(cotangent)))  # raises CheckFailure on a false failure


def test_a_cosine_gradient_whose_terms_cancel_is_compared_at_the_size_of_its_terms():
    # bfloat16, seed 9: x1 = (0, 2^-5) parallel to x2 = (0, 17): d cos / d x1 is 32 - 32, which a
    # kernel rounding each term leaves at 0.125 (half a bfloat16 ulp at 32); the spec's
    # gradient_magnitude, 2 / min(|x1|, |x2|) = 64, scales the gradient's atol.
    from loss_conformance.checks import CheckContext, check_backward
    from loss_conformance.case import Case
    from loss_conformance.layouts import MemoryLayout
    from loss_conformance.oracle import Oracle
    from loss_conformance.timing import Timings
    spec = shipped_specs()["cosine_embedding_loss"]
    case = Case(spec.id, "default", "unbatched", "bfloat16",
                {"input1": np.array([0.0, 2.0 ** -5], dtype=np.float32), "input2": np.array([0.0, 17.0], dtype=np.float32),
                 "target": np.array(-1.0, dtype=np.float32)}, {}, dims={"D": 2})
    oracle = Oracle(spec, "cpu", Timings())
    assert oracle.gradient_magnitude(case, "mean") == pytest.approx(64.0)
    with Runner({spec.id: spec}, "torch.nn", 5, 0) as runner:
        ctx = CheckContext(spec, runner.backend, oracle, "bfloat16", "cpu", "mean", Timings())
        check_backward(ctx, case, _Fixed(MemoryLayout(), np.array(1.0)))  # raises CheckFailure on a false failure


@pytest.mark.parametrize("exact, actual, conforms", [
    (65552.0, 65504.0, True),    # the exact value rounds to inf; a kernel's roundings may land below
    (65552.0, np.inf, True),
    (65552.0, -np.inf, False),   # an infinity of the other sign
    (65552.0, 60000.0, False),   # finite, but beyond the tolerance
    (65500.0, np.inf, True),     # the exact value rounds to 65504; within the tolerance of 65520
    (30000.0, np.inf, False),    # far from the threshold: an overflow is wrong
    (np.inf, 65504.0, False),    # an infinite exact value stays infinite
])
def test_a_value_at_the_overflow_threshold_may_round_to_either_side(exact, actual, conforms):
    from loss_conformance.compare import compare
    from loss_conformance.execution import Output
    from loss_conformance_reference.model import Tolerance
    got = Output("Tensor", "torch.float16", "cpu", (), np.array(actual, dtype=np.float64))
    problem = compare(got, np.array(exact), "float16", "cpu", Tolerance(0.0039, 0.0039))
    assert (problem is None) == conforms, problem
