"""The reference checks itself: two independent evaluations (NumPy and torch, both float64) agree
on generated cases for every shipped spec, variant and reduction, and the torch evaluation -- the
gradient oracle -- passes gradcheck (and gradgradcheck where the spec promises double backward)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd.gradcheck import GradcheckError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loss_conformance.strategies import case_strategy
from loss_conformance_reference import shipped_specs
from loss_conformance_reference.evaluate import build_env, evaluate
from loss_conformance_reference.formula import numpy_context, torch_context

NP = numpy_context()
TORCH = torch_context("cpu")
SETTINGS = settings(max_examples=10, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
VARIANTS = [pytest.param(loss, variant.name, id=f"{loss}-{variant.name}")
            for loss, spec in sorted(shipped_specs().items()) for variant in spec.variants]


def _tensors(inputs):
    return {k: (torch.from_numpy(np.array(v, copy=True)) if v is not None else None) for k, v in inputs.items()}


def _magnitude(inputs) -> float:
    out = 1.0
    for v in inputs.values():
        if v is not None and v.size and np.issubdtype(v.dtype, np.floating):
            out = max(out, float(np.max(np.abs(v))))
    return out


def _cases(spec, variant, interior=False):
    # the reduction only decides whether `reduction` is passed or left at its default; every
    # reduction is evaluated on each case below
    return st.sampled_from(spec.reductions).flatmap(
        lambda r: case_strategy(spec, "float64", r, interior=interior, variants=[variant]))


@pytest.mark.parametrize("loss, variant_name", VARIANTS)
def test_numpy_and_torch_evaluations_agree(loss, variant_name):
    spec = shipped_specs()[loss]
    variant = spec.variant(variant_name)

    @SETTINGS
    @given(case=_cases(spec, variant_name))
    def check(case):
        assert all(v is None or v.dtype in (np.float64, np.int64) for v in case.inputs.values())
        a = evaluate(spec, variant, case.inputs, case.params, NP, reductions=spec.reductions).outputs
        b = evaluate(spec, variant, _tensors(case.inputs), case.params, TORCH, reductions=spec.reductions).outputs
        scale = _magnitude(case.inputs)
        for r in spec.reductions:
            x = np.asarray(a[r], dtype=np.float64)
            assert isinstance(b[r], torch.Tensor) and b[r].dtype == torch.float64
            y = b[r].detach().numpy()
            assert x.shape == y.shape, (r, x.shape, y.shape)
            assert np.array_equal(np.isnan(x), np.isnan(y)), (r, x, y)
            assert np.array_equal(np.isinf(x), np.isinf(y)) and np.array_equal(x[np.isinf(x)], y[np.isinf(y)]), (r, x, y)
            ok = np.isfinite(x)
            assert np.all(np.abs(x[ok] - y[ok]) <= 1e-12 * (np.abs(x[ok]) + scale)), (r, x, y)

    check()


@pytest.mark.parametrize("loss, variant_name", VARIANTS)
def test_reference_passes_gradcheck_on_interior_cases(loss, variant_name):
    spec = shipped_specs()[loss]
    variant = spec.variant(variant_name)
    checked = []

    @SETTINGS
    @given(case=_cases(spec, variant_name, interior=True))
    def check(case):
        smooth = spec.gradient.smooth_when
        if smooth is not None:
            env, layout = build_env(spec, variant, case.inputs, case.params, NP)
            for name in layout.unbatched:  # predicates see the inputs as passed
                env[name] = np.squeeze(env[name], axis=0)
            if not bool(smooth.evaluate(env, NP)):
                return  # finite differences are not valid across a kink
        out = evaluate(spec, variant, case.inputs, case.params, NP, reductions=spec.reductions).outputs
        if not all(np.all(np.isfinite(np.asarray(v))) for v in out.values()):
            return
        wrt = [n for n in variant.differentiable if case.inputs.get(n) is not None]
        assert wrt, "a case with no differentiable input present"
        base = _tensors(case.inputs)
        leaves = tuple(base[n].clone().requires_grad_(True) for n in wrt)

        def fn(*xs):
            outs = evaluate(spec, variant, {**base, **dict(zip(wrt, xs))}, case.params, TORCH,
                            reductions=spec.reductions).outputs
            return tuple(outs[r] for r in spec.reductions)

        assert torch.autograd.gradcheck(fn, leaves)
        if spec.gradient.double_backward:
            assert torch.autograd.gradgradcheck(fn, leaves)
        checked.append(case)

    check()
    assert checked, f"no interior case of {loss}/{variant_name} had a smooth, finite loss"


def test_gradcheck_catches_a_wrong_gradient():
    # the check above is not vacuous: a function whose backward is wrong fails gradcheck
    class Wrong(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return (x ** 2).sum()

        @staticmethod
        def backward(ctx, g):
            return g * torch.ones(3, dtype=torch.float64)

    x = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64, requires_grad=True)
    with pytest.raises(GradcheckError):
        torch.autograd.gradcheck(Wrong.apply, (x,))
