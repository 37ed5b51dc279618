"""Memory layouts: the tensors built have exactly the layout asked for, hold the same values, are
leaves that take gradients, and every layout a shape allows is drawn; snippets rebuild them."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import find
from hypothesis.errors import NoSuchExample

from loss_conformance.case import Case
from loss_conformance.layouts import KINDS, MemoryLayout, layout_strategy, materialise, repeat_along
from loss_conformance.reproduce import snippet

VALUES = torch.arange(2 * 3 * 4 * 5, dtype=torch.float64).reshape(2, 3, 4, 5)
LAYOUTS = [MemoryLayout("permuted", perm=(2, 0, 3, 1)), MemoryLayout("offset", offset=3),
           MemoryLayout("strided", step=2, axis=1), MemoryLayout("strided", step=3, axis=3),
           MemoryLayout("channels_last", perm=(0, 2, 3, 1))]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda lay: f"{lay.kind}-{lay.axis}")
def test_materialised_tensor_holds_the_values_in_that_layout(layout):
    tensor = materialise(VALUES, layout)
    assert torch.equal(tensor, VALUES)
    assert tensor.is_leaf and tensor.dtype == VALUES.dtype
    if layout.kind == "channels_last":
        assert tensor.is_contiguous(memory_format=torch.channels_last)
    assert tensor.is_contiguous() == (layout.kind == "offset")  # contiguous strides, past the start
    assert tensor.storage_offset() == layout.offset
    if layout.kind == "strided":
        assert tensor.stride(layout.axis) == VALUES.stride(layout.axis) * layout.step


def test_expanded_layout_has_stride_zero_and_repeats_the_first_slice():
    layout = MemoryLayout("expanded", axis=2)
    values = repeat_along(VALUES.numpy(), layout)
    assert np.array_equal(values, np.broadcast_to(VALUES.numpy()[:, :, :1], VALUES.shape))
    tensor = materialise(torch.from_numpy(values), layout)
    assert tensor.stride(2) == 0 and torch.equal(tensor, torch.from_numpy(values))
    with pytest.raises(ValueError, match="stride 0"):
        materialise(VALUES, layout)  # values that vary along the axis cannot be expanded


def test_storage_outside_the_view_holds_sentinels():
    # A kernel that reads raw storage past the view's elements reads NaN, or an index no loss takes.
    floats = materialise(torch.ones(4), MemoryLayout("offset", offset=2))
    stored = torch.empty(0).set_(floats.untyped_storage())
    assert torch.isnan(stored[:2]).all() and torch.equal(stored[2:], torch.ones(4))
    ints = materialise(torch.zeros(3, dtype=torch.int64), MemoryLayout("strided", step=2))
    raw = torch.empty(0, dtype=torch.int64).set_(ints.untyped_storage())
    assert raw.tolist() == [0, 2**31 - 1, 0, 2**31 - 1, 0, 2**31 - 1]


@pytest.mark.parametrize("layout", LAYOUTS + [MemoryLayout("expanded", axis=1)], ids=lambda lay: lay.kind)
def test_gradients_flow_to_a_leaf_in_any_layout(layout):
    values = torch.from_numpy(repeat_along(VALUES.numpy(), layout))
    leaf = materialise(values, layout).requires_grad_(True)
    (grad,) = torch.autograd.grad((leaf ** 2).sum(), [leaf])
    assert torch.equal(grad, 2 * values)


@pytest.mark.parametrize("kind", [k for k in KINDS])
def test_every_layout_a_shape_allows_is_drawn(kind):
    found = find(layout_strategy((2, 3, 4, 5), expandable=(0, 1, 2, 3)), lambda lay: lay.kind == kind)
    assert found.kind == kind


def test_layouts_a_shape_cannot_take_are_never_drawn():
    for kind, shape, axes in (("permuted", (5,), (0,)), ("permuted", (1, 4, 1), ()), ("channels_last", (2, 3), (0, 1)),
                              ("channels_last", (2, 1, 3, 3), ()),
                              ("expanded", (2, 3), ()), ("expanded", (1, 1), (0, 1)), ("strided", (0, 3), (1,))):
        with pytest.raises(NoSuchExample):
            find(layout_strategy(shape, axes), lambda lay, kind=kind: lay.kind == kind)


def test_snippet_rebuilds_the_layouts(tmp_path):
    layout = MemoryLayout("permuted", perm=(1, 0))
    case = Case("mse_loss", "default", "any_shape", "float64",
                {"input": np.arange(6.0).reshape(2, 3), "target": np.zeros((2, 3)), "weight": None}, {},
                layouts={"input": layout}, cotangent=np.ones((2, 3)),
                cotangent_layout=MemoryLayout("expanded", axis=0))
    code = snippet(case, "torch.nn.functional", "cpu", "backward", wrt=("input",))
    scope: dict = {}
    exec(compile(code.replace("params = {}", "params = {'reduction': 'none'}"), "snippet", "exec"), scope)
    assert scope["backend_inputs"]["input"].stride() == (1, 2)
    assert scope["reference_inputs"]["input"].stride() == (1, 2)
    assert scope["cotangent"].stride() == (0, 1)
    assert torch.equal(scope["actual"].detach(), scope["expected"].detach())


def test_a_known_deviation_can_name_an_inputs_layout(tmp_path):
    from loss_conformance.deviations import matching
    from loss_conformance_reference import shipped_specs
    from loss_conformance_reference.loader import load_deviations

    path = tmp_path / "deviations.yaml"
    path.write_text("format: 1\ndeviations:\n  - loss: l1_loss\n    checks: [forward]\n"
                    "    when: \"layout_input == 'permuted'\"\n    reason: reads rows as columns\n")
    (deviation,) = load_deviations(path, shipped_specs())["l1_loss"]
    values = {"input": np.zeros((2, 2)), "target": np.zeros((2, 2))}
    permuted = Case("l1_loss", "default", "any_shape", "float64", values, {},
                    layouts={"input": MemoryLayout("permuted", perm=(1, 0))})
    strided = Case("l1_loss", "default", "any_shape", "float64", values, {},
                   layouts={"input": MemoryLayout("strided", step=2)})
    assert matching((deviation,), lambda: permuted.layout_scope(values)) is deviation
    assert matching((deviation,), lambda: strided.layout_scope(values)) is None
    assert matching((deviation,), lambda: Case("l1_loss", "default", "any_shape", "float64", values,
                                               {}).layout_scope(values)) is None


def test_a_when_sees_whether_an_input_was_passed_and_the_incoming_gradient():
    from loss_conformance_reference.loader import layout_names
    assert {"passed_weight", "layout_weight", "cotangent"} <= set(layout_names(["input", "weight"]))
    case = Case("mse_loss", "default", "any_shape", "float16",
                {"input": np.zeros(2), "target": np.zeros(2), "weight": None}, {})
    scope = case.input_scope(["input", "target", "weight"])
    assert scope["passed_input"] and not scope["passed_weight"] and "cotangent" not in scope
    case.cotangent = np.ones(2)
    assert np.array_equal(case.input_scope(["input"])["cotangent"], np.ones(2))


class _Recorded(torch.autograd.Function):
    """x ** 2 elementwise, whose backward notes the layout of every incoming gradient it is given."""

    seen: list[tuple[bool, int]] = []

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad):
        _Recorded.seen.append((grad.is_contiguous(), grad.storage_offset()))
        (x,) = ctx.saved_tensors
        return 2 * x * grad


def test_gradgradcheck_receives_the_drawn_incoming_gradient_in_its_layout():
    # The gradcheck check hands gradgradcheck its own incoming gradient, in a drawn layout, instead
    # of torch's unseeded random contiguous one.
    from types import SimpleNamespace

    from loss_conformance.backends import FunctionalBackend
    from loss_conformance.execution import Request, _gradcheck
    from loss_conformance_reference import shipped_specs

    def mse_loss(input, target, reduction="mean", weight=None):
        loss = _Recorded.apply(input - target)
        return loss if reduction == "none" else loss.sum() if reduction == "sum" else loss.mean()

    backend = FunctionalBackend(SimpleNamespace(mse_loss=mse_loss), "recorded")
    x, y = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]), np.array([[1.0, 0.0, 0.5], [-1.0, 0.5, 0.25]])
    for layout, expected in ((MemoryLayout("permuted", perm=(1, 0)), (False, 0)),
                             (MemoryLayout("offset", offset=2), (True, 2))):
        _Recorded.seen.clear()
        request = Request("gradcheck", "mse_loss", {"input": x, "target": y}, {"reduction": "none"}, "cpu",
                          wrt=("input", "target"), double_backward=True, cotangent=np.full((2, 3), 0.5),
                          cotangent_layout=layout)
        assert _gradcheck(backend, shipped_specs()["mse_loss"], request) is None
        assert expected in _Recorded.seen, (layout, _Recorded.seen)
