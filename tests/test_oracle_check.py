"""The oracle's autograd gradients are cross-checked, in the run, against finite differences of its
NumPy forward: a torch whose backward of a primitive changed is caught instead of grading
backends with a moved oracle."""
from __future__ import annotations

import types

import pytest
import torch
from hypothesis import HealthCheck, given, seed, settings

from loss_conformance.oracle import Oracle
from loss_conformance.oracle_check import OracleDisagrees, check_oracle_gradient
from loss_conformance.records import CheckId
from loss_conformance.runner import Runner
from loss_conformance.strategies import case_strategy
from loss_conformance.timing import Timings
from loss_conformance_reference import shipped_specs
from loss_conformance_reference.formula import torch_context
from loss_conformance_reference.formula.context import ArrayContext

SPECS = shipped_specs()


def _changed_backward(name: str) -> types.SimpleNamespace:
    """array-api-compat's torch namespace with ``name``'s derivative doubled, as a torch release
    that changed the backward of one primitive would have it."""
    import array_api_compat.torch as xp
    primitive = getattr(xp, name)

    class Changed(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):  # type: ignore[override]
            ctx.save_for_backward(x)
            return primitive(x)

        @staticmethod
        def backward(ctx, grad):  # type: ignore[override]
            (x,) = ctx.saved_tensors
            with torch.enable_grad():
                x = x.detach().requires_grad_()
                (true,) = torch.autograd.grad(primitive(x), x, grad)
            return 2 * true

    namespace = types.SimpleNamespace(**{k: getattr(xp, k) for k in dir(xp) if not k.startswith("__")})
    setattr(namespace, name, Changed.apply)
    return namespace


def _with_changed(oracle: Oracle, name: str) -> Oracle:
    ctx = oracle.torch_ctx
    oracle.torch_ctx = ArrayContext(_changed_backward(name), ctx.float_dtype, ctx.index_dtype, ctx.device, name="torch")
    return oracle


def _smooth_cases(loss: str, reduction: str, run_seed: int, count: int = 8) -> list:
    """Interior cases on which the spec's smooth_when holds, as the gradcheck check draws them."""
    spec = SPECS[loss]
    oracle = Oracle(spec, "cpu", Timings())
    cases: list = []

    @seed(run_seed)
    @settings(max_examples=60, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case_strategy(spec, "float64", reduction, interior=True))
    def collect(case) -> None:
        smooth = spec.gradient.smooth_when
        if len(cases) < count and (smooth is None or bool(smooth.evaluate(oracle.env(case), _numpy()))):
            cases.append(case)

    collect()
    return cases


def _numpy():
    from loss_conformance_reference.formula import numpy_context
    return numpy_context()


def _wrt(loss: str, case) -> tuple[str, ...]:
    return tuple(n for n in SPECS[loss].variant(case.variant).differentiable if case.inputs.get(n) is not None)


CHANGED = [("abs", "l1_loss", "sum"), ("exp", "poisson_nll_loss", "mean"), ("log", "binary_cross_entropy", "none")]


@pytest.mark.parametrize("run_seed", [0, 1, 2])
@pytest.mark.parametrize("primitive,loss,reduction", CHANGED)
def test_a_changed_backward_of_a_primitive_is_caught(primitive, loss, reduction, run_seed):
    cases = _smooth_cases(loss, reduction, run_seed)
    assert cases
    healthy = Oracle(SPECS[loss], "cpu", Timings())
    changed = _with_changed(Oracle(SPECS[loss], "cpu", Timings()), primitive)
    caught = 0
    for case in cases:
        check_oracle_gradient(healthy, case, reduction, _wrt(loss, case))  # the torch at hand agrees
        try:
            check_oracle_gradient(changed, case, reduction, _wrt(loss, case))
        except OracleDisagrees as disagreement:
            assert "finite differences" in str(disagreement)
            caught += 1
    # A case whose formula does not reach the primitive (poisson's rate form has no exp) passes.
    assert caught >= len(cases) // 2, (caught, len(cases))


@pytest.mark.parametrize("loss", sorted(SPECS))
def test_the_oracle_agrees_with_its_finite_differences_on_smooth_points(loss):
    spec = SPECS[loss]
    oracle = Oracle(spec, "cpu", Timings())
    for reduction in spec.reductions:
        for case in _smooth_cases(loss, reduction, 0, count=4):
            check_oracle_gradient(oracle, case, reduction, _wrt(loss, case))


def test_a_run_whose_oracle_moved_reports_an_error_not_a_failure(monkeypatch):
    # Every Oracle the runner builds differentiates with abs's backward doubled.
    import loss_conformance.oracle as oracle_module
    monkeypatch.setattr(oracle_module, "torch_context",
                        lambda device="cpu": _with_changed(types.SimpleNamespace(torch_ctx=torch_context(device)),
                                                           "abs").torch_ctx)
    with Runner({"l1_loss": SPECS["l1_loss"]}, "torch.nn.functional", 20, 0) as runner:
        (record,) = runner.run([CheckId("l1_loss", "gradcheck", "sum", "float64", "cpu")])
    assert record.status == "error"
    assert "disagrees with finite differences" in record.message
    assert record.counterexample is not None

