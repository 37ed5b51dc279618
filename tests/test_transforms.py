"""The function-transform checks: worker ops, the oracle's JVP and HVP, batches of samples, and
how the runner records what torch.func cannot transform."""
from __future__ import annotations

import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from loss_conformance.backends import FunctionalBackend, load_backend
from loss_conformance.case import Case
from loss_conformance.execution import Request, execute
from loss_conformance.oracle import Oracle
from loss_conformance.planning import CHECK_NAMES, plan
from loss_conformance.runner import Runner
from loss_conformance.strategies import case_strategy, siblings_strategy
from loss_conformance.timing import Timings
from loss_conformance_reference import shipped_specs
from loss_conformance_reference.formula import torch_context
from loss_conformance_reference.formula.primitives import norm

SPECS = shipped_specs()
MSE = SPECS["mse_loss"]
X, Y = np.array([1.0, -2.0, 3.0]), np.array([0.5, 0.5, -1.0])
TX, TY = np.array([1.0, 0.5, -1.0]), np.array([0.0, 2.0, 1.0])


def _run(op: str, backend: object = F, **fields: object):
    request = Request(op, "mse_loss", {"input": X, "target": Y}, {"reduction": "sum"}, "cpu", **fields)
    return execute(FunctionalBackend(backend, "b"), MSE, request)


def test_jvp_op_gives_both_apis_tangent():
    reply = _run("jvp", wrt=("input", "target"), tangents={"input": TX, "target": TY})
    want = float(np.sum(2 * (X - Y) * (TX - TY)))
    assert reply.derived_raised is None
    for api in ("torch.func.jvp", "torch.autograd.forward_ad"):
        assert reply.derived[api].values == pytest.approx(want)


def test_jvp_of_grad_op_gives_hessian_vector_products():
    reply = _run("jvp_of_grad", wrt=("input", "target"), tangents={"input": TX, "target": TY}, cotangent=np.array(3.0))
    assert reply.derived["input"].values == pytest.approx(3 * 2 * (TX - TY))
    assert reply.derived["target"].values == pytest.approx(-3 * 2 * (TX - TY))


def _item_mse(input, target, reduction="mean", weight=None):
    if float((input - target).abs().sum()) > 1e300:  # data-dependent: torch.func cannot vmap this
        raise ValueError("huge")
    return F.mse_loss(input, target, reduction=reduction)


def _raising_mse(input, target, reduction="mean", weight=None):
    raise ValueError("this kernel takes no batched tensors")


def test_vmap_op_stacks_tells_limitations_from_failures():
    batch = {"input": np.stack([X, Y]), "target": np.stack([Y, X])}
    spec_call = lambda obj: execute(FunctionalBackend(obj, "b"), MSE,  # noqa: E731
                                    Request("vmap", "mse_loss", batch, {"reduction": "sum"}, "cpu"))
    good = spec_call(F)
    assert good.output.shape == (2,) and good.output.values == pytest.approx([np.sum((X - Y) ** 2)] * 2)
    limited = spec_call(types.SimpleNamespace(mse_loss=_item_mse))
    assert limited.limitation and "item()" in limited.limitation and limited.raised is None
    failed = spec_call(types.SimpleNamespace(mse_loss=_raising_mse))
    assert failed.raised and "no batched tensors" in failed.raised and failed.limitation is None


def _case(spec, inputs, params, variant="default", layout=None) -> Case:
    layout = layout or spec.variant(variant).layouts[0].name
    return Case(spec.id, variant, layout, "float64", inputs, params)


def test_oracle_jvp_and_hvp_match_torch_func_on_a_smooth_loss():
    spec = SPECS["binary_cross_entropy_with_logits"]
    x, y = np.array([0.3, -2.0, 4.0]), np.array([0.2, 0.9, 0.5])
    tx, ty = np.array([1.0, -0.5, 2.0]), np.array([0.25, 1.0, -1.0])
    oracle = Oracle(spec, "cpu", Timings())
    case = _case(spec, {"input": x, "target": y, "weight": None, "pos_weight": None}, {"reduction": "sum"})

    def loss(a, b):
        return F.binary_cross_entropy_with_logits(a, b, reduction="sum")

    primals = (torch.tensor(x), torch.tensor(y))
    tangents = (torch.tensor(tx), torch.tensor(ty))
    assert oracle.jvp(case, "sum", {"input": tx, "target": ty}) == pytest.approx(
        torch.func.jvp(loss, primals, tangents)[1].item())
    hvp = oracle.hvp(case, "sum", np.array(1.0), {"input": tx, "target": ty})
    want = torch.func.jvp(torch.func.grad(loss, argnums=(0, 1)), primals, tangents)[1]
    assert hvp["input"] == pytest.approx(want[0].numpy()) and hvp["target"] == pytest.approx(want[1].numpy())


def test_reference_norm_keeps_its_curvature_at_a_zero_component():
    x = torch.tensor([0.0, -1.0], dtype=torch.float64)
    hessian = torch.autograd.functional.hessian(lambda v: norm(torch_context("cpu"), v), x)
    assert hessian.numpy() == pytest.approx(np.array([[1.0, 0.0], [0.0, 0.0]]))


@pytest.mark.parametrize("loss", ["cross_entropy", "ctc_loss", "triplet_margin_loss"])
@settings(max_examples=15, deadline=None, database=None)
@given(data=st.data())
def test_siblings_share_everything_but_values(loss, data):
    spec = SPECS[loss]
    case = data.draw(case_strategy(spec, "float32", "mean"))
    for other in data.draw(siblings_strategy(spec, case, 2)):
        assert (other.variant, other.layout, other.params, other.dims) == (case.variant, case.layout, case.params,
                                                                           case.dims)
        assert {k: np.shape(v) if v is not None else None for k, v in other.inputs.items()} == \
               {k: np.shape(v) if v is not None else None for k, v in case.inputs.items()}


def test_plan_runs_jvp_of_grad_in_float64_where_double_backward_is_promised():
    checks = plan([MSE, SPECS["multi_margin_loss"]], ["float32", "float64"], ["cpu"], CHECK_NAMES)
    hvp = {(c.loss, c.dtype) for c in checks if c.check == "jvp_of_grad"}
    assert hvp == {("mse_loss", "float64")}
    assert {(c.check, c.dtype) for c in checks if c.loss == "multi_margin_loss" and c.check in ("forward_ad", "vmap")} \
        == {("forward_ad", "float64"), ("vmap", "float64")}  # the widest dtype asked for


def _records(backend, checks):
    with Runner(SPECS, backend, 5, 0) as runner:
        return runner.run(plan([MSE], ["float64"], ["cpu"], checks))


def test_a_loss_torch_func_cannot_vmap_is_skipped_with_the_reason():
    records = _records(FunctionalBackend(types.SimpleNamespace(mse_loss=_item_mse), "item"), ("vmap",))
    assert records and all(r.status == "skipped" and "torch.func cannot vmap" in r.message for r in records)


def test_a_loss_that_raises_under_vmap_fails():
    records = _records(FunctionalBackend(types.SimpleNamespace(mse_loss=_raising_mse), "raises"), ("vmap",))
    assert records and all(r.status == "fail" for r in records)


def test_transform_checks_skip_a_backend_not_differentiable_in_torch():
    numpy_backend = load_backend("examples.numpy_losses")
    records = _records(numpy_backend, ("forward_ad", "vmap", "jvp_of_grad"))
    assert {r.check for r in records} == {"forward_ad", "vmap", "jvp_of_grad"}
    assert all(r.status == "skipped" for r in records)


def test_torch_passes_the_transform_checks_on_mse():
    records = _records(load_backend("torch.nn.functional"), ("forward_ad", "vmap", "jvp_of_grad"))
    assert records and all(r.status == "pass" for r in records), [(r.check, r.status, r.message) for r in records]


def test_the_tangents_tolerance_scales_with_the_terms_it_sums():
    # Two logits of 1e4 against target tangents of -1 and +1: their terms -x t_t cancel, leaving the
    # input's terms; a kernel rounding each element's tangent (1 + 1e4) in float16 loses the 1s.
    spec = SPECS["binary_cross_entropy_with_logits"]
    case = Case(spec.id, "default", "any_shape", "float16",
                {"input": np.array([1e4, 1e4, 0.0], dtype=np.float16), "target": np.zeros(3, dtype=np.float16),
                 "weight": None, "pos_weight": None}, {"reduction": "sum"}, dims={"s": (3,)})
    tangents = {"input": np.ones(3), "target": np.array([-1.0, 1.0, 0.0])}
    oracle = Oracle(spec, "cpu", Timings())
    assert oracle.jvp(case, "sum", tangents) == pytest.approx(2.5)
    assert oracle.jvp_magnitude(case, "sum", tangents) == pytest.approx(2e4 + 2.5)
    # elementwise ('none'): the largest element's terms
    none = Case(**{**case.__dict__, "params": {"reduction": "none"}})
    assert oracle.jvp_magnitude(none, "none", tangents) == pytest.approx(1e4 + 1)
