"""Gradients of the formula language through torch autograd, as the spec's conventions say: hand
derivations, the subgradients chosen at kinks and ties, and finite gradients where a naive formula
gives NaN or inf."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from loss_conformance_reference.formula import compile_formula, torch_context

TORCH = torch_context("cpu")


def _grad(text, values, cotangent=None, names=("x",), extra=None):
    x = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    out = compile_formula(text, list(names) + list(extra or {})).evaluate({"x": x, **(extra or {})}, TORCH)
    cot = torch.ones_like(out) if cotangent is None else torch.tensor(cotangent, dtype=torch.float64)
    (g,) = torch.autograd.grad(out, x, grad_outputs=cot)
    return out.detach(), g


def test_log_softmax_gradient_matches_hand_derivation():
    # y_i = x_i - log sum_k exp(x_k)  =>  (v^T dy/dx)_j = v_j - softmax(x)_j * sum_i v_i
    x = [0.3, -1.2, 2.0, 0.0]
    v = [1.0, -2.0, 0.5, 3.0]
    _, g = _grad("log_softmax(x)", x, v)
    z = sum(math.exp(a) for a in x)
    expected = [v[j] - math.exp(x[j]) / z * sum(v) for j in range(4)]
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-13, atol=1e-15)


def test_log_softmax_gradient_on_an_axis():
    x = torch.tensor([[0.0, 1.0], [2.0, -1.0], [0.5, 0.5]], dtype=torch.float64, requires_grad=True)
    out = compile_formula("log_softmax(x, axis=0)", ["x"]).evaluate({"x": x}, TORCH)
    (g,) = torch.autograd.grad(out[1, 0], x)
    col = [0.0, 2.0, 0.5]
    soft = [math.exp(c) / sum(math.exp(k) for k in col) for c in col]
    expected = np.zeros((3, 2))
    expected[:, 0] = [-soft[0], 1 - soft[1], -soft[2]]
    np.testing.assert_allclose(g.numpy(), expected, rtol=1e-13, atol=1e-15)


def test_where_on_a_safe_operand_gives_no_nan_gradient():
    # The unsafe form shows the check is sensitive: log(0) feeds inf into autograd, 0 * inf = NaN.
    _, unsafe = _grad("where(x > 0, log(x), 0.0)", [0.0, 2.0])
    assert math.isnan(unsafe[0])
    out, safe = _grad("where(x > 0, log(where(x > 0, x, 1.0)), 0.0)", [0.0, 2.0])
    np.testing.assert_array_equal(out.numpy(), [0.0, math.log(2.0)])
    np.testing.assert_array_equal(safe.numpy(), [0.0, 0.5])


def test_clamp_gradient_at_the_bound_flows_to_x():
    out, g = _grad("clamp(x, min=0.0, max=1.0)", [0.0, 1.0, 0.5, -1.0, 2.0])
    np.testing.assert_array_equal(out.numpy(), [0.0, 1.0, 0.5, 0.0, 1.0])
    np.testing.assert_array_equal(g.numpy(), [1.0, 1.0, 1.0, 0.0, 0.0])
    # the same as torch.clamp
    t = torch.tensor([0.0, 1.0, 0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    (tg,) = torch.autograd.grad(torch.clamp(t, 0.0, 1.0).sum(), t)
    np.testing.assert_array_equal(g.numpy(), tg.numpy())


def test_clamp_with_a_tensor_bound_sends_the_gradient_to_x_at_ties():
    y = torch.tensor([0.0, 1.0, 3.0], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([0.0, 2.0, 1.0], dtype=torch.float64, requires_grad=True)
    out = compile_formula("clamp(x, min=y)", ["x", "y"]).evaluate({"x": x, "y": y}, TORCH)
    gx, gy = torch.autograd.grad(out.sum(), (x, y))
    np.testing.assert_array_equal(gx.numpy(), [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(gy.numpy(), [0.0, 0.0, 1.0])


def test_maximum_first_argument_wins_ties():
    _, g = _grad("maximum(x, 0.0)", [0.0, 1.0, -1.0])
    np.testing.assert_array_equal(g.numpy(), [1.0, 1.0, 0.0])
    _, g = _grad("minimum(0.0, x)", [0.0, 1.0, -1.0])
    np.testing.assert_array_equal(g.numpy(), [0.0, 0.0, 1.0])


def test_sign_and_abs_subgradient_at_zero():
    _, g = _grad("abs(x)", [0.0, -2.0, 3.0])
    np.testing.assert_array_equal(g.numpy(), [0.0, -1.0, 1.0])  # sign(0) = 0, as torch


def test_smooth_primitives_have_finite_gradients_at_extremes():
    for text, xs, expected in [
        ("sigmoid(x)", [1e4, -1e4, 0.0], [0.0, 0.0, 0.25]),
        ("softplus(x)", [1e4, -1e4, 1.0], [1.0, 0.0, 1 / (1 + math.exp(-1.0))]),
        ("log_sigmoid(x)", [1e4, -1e4, -1.0], [0.0, 1.0, 1 / (1 + math.exp(-1.0))]),
        ("norm(x)", [0.0, 0.0], [0.0, 0.0]),
        ("xlogy(x, x)", [0.0, 1.0], [0.0, 1.0]),  # d/dx x log x = log x + 1
        ("logsumexp(x)", [-math.inf, 0.0], [0.0, 1.0]),
    ]:
        _, g = _grad(text, xs)
        np.testing.assert_allclose(g.numpy(), expected, rtol=1e-12, atol=1e-300, err_msg=text)


def test_xlogy_gradient_wrt_y_is_clean_where_x_is_zero():
    y = torch.tensor([0.0, 2.0], dtype=torch.float64, requires_grad=True)
    x = torch.tensor([0.0, 3.0], dtype=torch.float64)
    out = compile_formula("xlogy(x, y)", ["x", "y"]).evaluate({"x": x, "y": y}, TORCH)
    (g,) = torch.autograd.grad(out.sum(), y)
    np.testing.assert_array_equal(out.detach().numpy(), [0.0, 3.0 * math.log(2.0)])
    np.testing.assert_array_equal(g.numpy(), [0.0, 1.5])


def test_gradcheck_through_a_composite_formula():
    f = compile_formula("sum(softplus(x) * sigmoid(x) + log_softmax(x, axis=0) ** 2)", ["x"])
    x = torch.tensor([0.3, -1.1, 2.2], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: f.evaluate({"x": t}, TORCH), (x,))
    assert torch.autograd.gradgradcheck(lambda t: f.evaluate({"x": t}, TORCH), (x,))


@pytest.mark.parametrize("text", ["softplus(x)", "log_sigmoid(x)"])
def test_softplus_and_log_sigmoid_slope_at_zero_is_one_half(text):
    # d/dx log(1 + e^x) = sigmoid(x); d/dx log sigmoid(x) = 1 - sigmoid(x): both 1/2 at 0
    _, g = _grad(text, [0.0])
    assert float(g[0]) == 0.5
