"""multilabel_margin_loss's formula sorts scores instead of building a table of class pairs: its
values and gradients equal a plain loop over the pairs (the loss's definition, written
independently in NumPy) and torch's kernel, in float64, ties and repeated targets included."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from loss_conformance_reference import shipped_specs
from loss_conformance_reference.evaluate import evaluate
from loss_conformance_reference.formula import numpy_context, torch_context

SPEC = shipped_specs()["multilabel_margin_loss"]
NP = numpy_context()
TORCH = torch_context("cpu")


def loop_loss(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row losses and d(sum of losses)/dx by the definition: every read target j against every
    non-target class i, hinge (1 - x[y_j]) + x[i] when positive (gradient 0 at exactly 0)."""
    rows, classes = x.shape
    loss, grad = np.zeros(rows), np.zeros_like(x)
    for n in range(rows):
        read = []
        for j in y[n]:
            if j == -1:
                break
            read.append(int(j))
        targets = set(read)
        for j in read:
            for i in range(classes):
                if i in targets:
                    continue
                z = (1.0 - x[n, j]) + x[n, i]
                if z > 0:
                    loss[n] += z / classes
                    grad[n, j] -= 1.0 / classes
                    grad[n, i] += 1.0 / classes
    return loss, grad


@st.composite
def rows(draw):
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 7))
    # Scores on a grid of quarters: gaps of exactly 1 (hinges at 0) and equal scores are common.
    x = np.array(draw(st.lists(st.integers(-8, 8), min_size=n * c, max_size=n * c)), float).reshape(n, c) / 4
    y = np.array(draw(st.lists(st.integers(-1, c - 1), min_size=n * c, max_size=n * c))).reshape(n, c)
    return x, y


@settings(max_examples=150, deadline=None, database=None, derandomize=True)
@given(case=rows())
def test_sorted_formula_equals_the_pairwise_loop_and_torch(case):
    x, y = case
    expected, expected_grad = loop_loss(x, y)
    variant = SPEC.variants[0]
    values = evaluate(SPEC, variant, {"input": x, "target": y}, {}, NP, reductions=("none",)).outputs["none"]
    np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-12)

    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    ours = evaluate(SPEC, variant, {"input": xt, "target": torch.from_numpy(y)}, {}, TORCH, reductions=("none",))
    (grad,) = torch.autograd.grad(ours.outputs["none"].sum(), xt)
    np.testing.assert_allclose(ours.outputs["none"].detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad.numpy(), expected_grad, rtol=1e-12, atol=1e-12)

    xk = torch.from_numpy(x.copy()).requires_grad_(True)
    kernel = F.multilabel_margin_loss(xk, torch.from_numpy(y), reduction="none")
    (kernel_grad,) = torch.autograd.grad(kernel.sum(), xk)
    np.testing.assert_allclose(kernel.detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(kernel_grad.numpy(), expected_grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("classes", [300, 1000])
def test_sorted_formula_at_hundreds_of_classes(classes):
    """Many targets and non-targets in one row, random scores: the sums over sorted prefixes agree
    with the loop beyond float64's rounding of a sum of ``classes`` terms."""
    rng = np.random.default_rng(classes)
    x = rng.normal(size=(2, classes))
    y = np.full((2, classes), -1)
    y[0, : classes // 3] = rng.integers(0, classes, classes // 3)
    y[1, :] = rng.permutation(classes)
    y[1, classes // 2] = -1
    expected, expected_grad = loop_loss(x, y)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    out = evaluate(SPEC, SPEC.variants[0], {"input": xt, "target": torch.from_numpy(y)}, {}, TORCH,
                   reductions=("none",)).outputs["none"]
    (grad,) = torch.autograd.grad(out.sum(), xt)
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-11)
    np.testing.assert_allclose(grad.numpy(), expected_grad, rtol=1e-12, atol=1e-15)
