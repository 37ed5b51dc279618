"""The large check's sizes: they come from the specs' dims, reach the element target and the class
counts the issue of kernels changing strategy names, and a failing large case is reported without
listing millions of values, and replayed from the file it is saved to."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import find, given, settings
from hypothesis import strategies as st

from loss_conformance.case import LISTED_ELEMENTS, Case
from loss_conformance.domains import everyday_sampler
from loss_conformance.fill import PooledFill
from loss_conformance.reproduce import save_arrays, snippet
from loss_conformance.planning import DEFAULT_CHECKS, plan
from loss_conformance.sizes import ELEMENT_TARGET, fill_size, large_dims_strategy, large_layouts
from loss_conformance_reference import SpecError, load_spec, shipped_specs
from loss_conformance_reference.shapes import concrete_shape
from loss_conformance_spec import LOSSES_DIR

SPECS = shipped_specs()
LAYOUTS = [(loss, v.name, lay.name) for loss, spec in SPECS.items() for v in spec.variants
           for lay in large_layouts(spec, v)]
# torch's kernel compares every target with every class, O(C x targets) per sample (40 s for one
# sample of 40000 classes and targets): one or two samples of 36000 to 40000 classes, not 2^24
# elements.
PAIRWISE = {"multilabel_margin_loss"}


def _layout(loss: str, variant: str, layout: str):
    v = SPECS[loss].variant(variant)
    return v, next(lay for lay in v.layouts if lay.name == layout)


def _sizes(loss: str, variant: str, layout: str, dims: dict) -> dict[str, tuple[int, ...]]:
    v, lay = _layout(loss, variant, layout)
    patterns = {**{i.name: i.shape for i in v.inputs.values() if i.shape is not None}, **lay.shapes}
    return {name: concrete_shape(p, dims) for name, p in patterns.items()}


@pytest.mark.parametrize("loss,variant,layout", LAYOUTS, ids=["-".join(x) for x in LAYOUTS])
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_a_large_case_reaches_the_element_target_where_a_dim_fills(loss, variant, layout, data):
    spec = SPECS[loss]
    v, lay = _layout(loss, variant, layout)
    dims = data.draw(large_dims_strategy(spec, v, lay))
    biggest = max(math.prod(s) for s in _sizes(loss, variant, layout, dims).values())
    fills = [d for d in spec.dims.values() if d.large and d.large.fill]
    if fills and any(fills[0].name in {t.lstrip("*") for t in p} for p in lay.shapes.values()):
        assert biggest >= ELEMENT_TARGET, (dims, biggest)
    for dim in spec.dims.values():  # a size from the large range where the spec gives one
        if dim.large and dim.large.min is not None:
            sizes = dims[dim.name] if dim.variadic else (dims[dim.name],)
            assert all(dim.large.min <= s <= dim.large.max for s in sizes)


def test_every_loss_reaches_2_to_the_24_elements_in_some_layout():
    for loss, spec in SPECS.items():
        reached = False
        for v in spec.variants:
            for lay in large_layouts(spec, v):
                dims = find(large_dims_strategy(spec, v, lay), lambda _: True)
                reached |= max(math.prod(s) for s in _sizes(loss, v.name, lay.name, dims).values()) >= ELEMENT_TARGET
        assert reached or loss in PAIRWISE, loss


def test_class_indexed_losses_draw_32768_classes_and_more():
    for loss, spec in SPECS.items():
        classes = {i.classes for v in spec.variants for i in v.inputs.values() if i.is_index and i.classes}
        for name in classes:
            large = spec.dims[name].large
            assert large is not None and large.min is not None, (loss, name)
            assert large.min >= 32768, (loss, name)


def test_spatial_ranks_reach_5():
    ranks = {loss: spec.dims["d"].large.rank for loss, spec in SPECS.items() if "d" in spec.dims}
    assert ranks == {"cross_entropy": (1, 5), "nll_loss": (1, 5)}
    assert all(spec.dims["s"].large.rank[1] == 5 for spec in SPECS.values() if "s" in spec.dims)


def test_fill_size_is_the_smallest_that_reaches_the_target():
    patterns = [("N", "C", "*d"), ("N", "*d")]
    dims = {"C": 40000, "d": (3, 2)}
    n = fill_size("N", None, dims, patterns, 2**24)
    assert n % 2 == 1 and n * 40000 * 6 >= 2**24 > (n - 2) * 40000 * 6  # the smallest odd size
    group = fill_size("d", 5, {"N": 2, "C": 3}, patterns, 2**24)
    assert len(group) == 5 and all(a % 2 == 1 for a in group) and 6 * math.prod(group) >= 2**24
    assert 6 * math.prod(group[:-1]) * (group[-1] - 2) < 2**24  # the last axis trimmed to the target
    # an odd fill leaves every block of 2^16 a partial last one where the other dims are odd
    assert (3 * fill_size("s", 1, {"N": 3}, [("N", "*s")], 2**24 + 1)[0]) % 2**16
    assert fill_size("K", None, dims, patterns, 2**24) is None  # a dim no pattern uses


@st.composite
def _pooled(draw):
    fill = PooledFill(draw)
    big = fill.array(np.float32, (300, 1000), st.floats(-2.0**100, 2.0**100, width=32), everyday_sampler("real"))
    return big, fill.array(np.float32, (64,), st.floats(-3, 3, width=32))


@settings(max_examples=5, deadline=None)
@given(arrays=_pooled())
def test_pooled_arrays_have_the_shape_and_mostly_ordinary_values(arrays):
    big, small = arrays
    assert big.shape == (300, 1000) and big.dtype == np.float32 and small.shape == (64,)
    assert np.mean(np.abs(big) <= 3) > 0.98  # extremes are planted, not spread
    assert len(np.unique(big)) > 0.9 * big.size  # everyday values are generic: no pool repeated


def _large_case(n: int = 70000) -> Case:
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    return Case("mse_loss", "default", "any_shape", "float32", {"input": x, "target": y, "weight": None},
                {"reduction": "sum"}, cotangent=np.array(1.0), dims={"s": (n,)})


def test_a_large_counterexample_is_summarised_and_saved(tmp_path: Path):
    case = _large_case()
    assert case.is_large()
    saved = save_arrays(case, tmp_path / "cases", "mse_loss large sum float32 cpu")
    described = case.describe(saved)
    assert described["inputs"]["input"]["values"] is None
    assert described["inputs"]["input"]["saved"] == saved and Path(saved).exists()
    assert described["inputs"]["input"]["summary"]["nan"] == 0
    assert described["dims"] == {"s": [70000]}
    stored = np.load(saved)
    assert np.array_equal(stored["input"], case.inputs["input"])


def test_a_large_snippet_replays_from_the_saved_file(tmp_path: Path):
    case = _large_case()
    saved = save_arrays(case, tmp_path, "case")
    code = snippet(case, "torch.nn.functional", "cpu", "large", wrt=("input",), saved=saved)
    assert len(code) < 4000 and str(LISTED_ELEMENTS) not in code
    scope: dict = {}
    exec(compile(code, "snippet", "exec"), scope)
    assert scope["backend_inputs"]["input"].shape == (70000,)
    torch.testing.assert_close(scope["actual"].double(), scope["expected"], rtol=1e-5, atol=1e-3)


def test_large_runs_once_per_reduction_in_the_narrowest_dtype_and_only_when_asked():
    spec = SPECS["mse_loss"]
    assert not [c for c in plan([spec], ["float32", "float64"], ["cpu"], DEFAULT_CHECKS) if c.check == "large"]
    large = [c for c in plan([spec], ["float64", "bfloat16", "float32"], ["cpu"], ("large",))]
    assert {(c.reduction, c.dtype) for c in large} == {(r, "bfloat16") for r in spec.reductions}


@pytest.mark.parametrize("large,words", [
    ("{fill: true, min: 3, max: 9}", ("no min or max",)),
    ("{min: 9}", ("both min and max",)),
    ("{min: 9, max: 3}", ("above",)),
    ("{rank: [1, 5]}", ("variadic",)),
])
def test_a_bad_large_entry_is_a_spec_error(tmp_path, large, words):
    text = (LOSSES_DIR / "cross_entropy.yaml").read_text(encoding="utf-8")
    old = "  C: {min: 1, max: 5, large: {min: 40000, max: 70000}}"
    assert text.count(old) == 1
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, f"  C: {{min: 1, max: 5, large: {large}}}"), encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert "large" in info.value.field and all(w in str(info.value) for w in words), str(info.value)


def test_two_dims_that_fill_are_a_spec_error(tmp_path):
    text = (LOSSES_DIR / "cross_entropy.yaml").read_text(encoding="utf-8")
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace("large: {min: 40000, max: 70000}", "large: {fill: true}"), encoding="utf-8")
    with pytest.raises(SpecError, match="only one dim can fill"):
        load_spec(path)
