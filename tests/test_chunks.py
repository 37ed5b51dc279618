"""The oracle in chunks of rows equals the oracle in one piece: values, error magnitudes and
vector-Jacobian products, for losses of every kind, with chunks of a few elements; and a formula
whose rows read one another is evaluated in one piece."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loss_conformance.oracle import Oracle
from loss_conformance.strategies import case_strategy
from loss_conformance.timing import Timings
from loss_conformance_reference import shipped_specs
from loss_conformance_reference.chunks import evaluate_in_chunks, plan_split, row_bindings
from loss_conformance_reference.evaluate import build_env, evaluate
from loss_conformance_reference.formula import compile_formula, numpy_context, torch_context

NP = numpy_context()
TORCH = torch_context("cpu")
# Rows cut: class-indexed (with a normaliser summed over the batch), pairwise distances, elementwise
# over a variadic group, multi-label; and CTC, whose rows the probe finds are not cut that way.
LOSSES = ["cross_entropy", "nll_loss", "triplet_margin_loss", "mse_loss", "kl_div", "gaussian_nll_loss", "multilabel_margin_loss",
          "multi_margin_loss", "cosine_embedding_loss", "triplet_margin_with_distance_loss", "ctc_loss"]
TINY = 4  # elements per chunk: a row or two each


def _cases(spec):
    return st.sampled_from(spec.reductions).flatmap(lambda r: case_strategy(spec, "float64", r))


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64),
                               rtol=1e-10, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize("loss", LOSSES)
def test_chunked_values_and_magnitudes_equal_one_piece(loss):
    spec = shipped_specs()[loss]

    @settings(max_examples=15, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(case=_cases(spec))
    def check(case):
        variant = spec.variant(case.variant)
        for gradient in (False, True):
            whole = evaluate(spec, variant, case.inputs, case.params, NP, spec.reductions, True, gradient=gradient)
            parts = evaluate_in_chunks(spec, variant, case.inputs, case.params, NP, spec.reductions, True,
                                       gradient=gradient, chunk_elements=TINY)
            for r in spec.reductions:
                _close(parts.outputs[r], whole.outputs[r])
                _close(parts.magnitude[r], whole.magnitude[r])

    check()


@pytest.mark.parametrize("loss", LOSSES)
def test_chunked_vjp_equals_one_piece(loss):
    spec = shipped_specs()[loss]
    whole = Oracle(spec, "cpu", Timings(), chunk_elements=None)
    parts = Oracle(spec, "cpu", Timings(), chunk_elements=TINY)

    @settings(max_examples=10, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(case=_cases(spec), data=st.data())
    def check(case, data):
        variant = spec.variant(case.variant)
        wrt = tuple(n for n in variant.differentiable if case.inputs.get(n) is not None)
        for r in spec.reductions:
            shape = np.shape(whole.forward(case, (r,))[0][r])
            cotangent = data.draw(st.lists(st.floats(-2, 2), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
            cotangent = np.asarray(cotangent, dtype=np.float64).reshape(shape)
            expected, got = whole.vjp(case, r, cotangent, wrt), parts.vjp(case, r, cotangent, wrt)
            for name in wrt:
                _close(got[name], expected[name])

    check()


def test_rows_are_cut_where_the_formula_keeps_them_apart():
    spec = shipped_specs()["cross_entropy"]
    variant = spec.variant("class_index")
    inputs = {"input": np.random.default_rng(0).normal(size=(6, 3)), "target": np.array([0, 1, 2, 0, 1, 2])}
    env, layout = build_env(spec, variant, inputs, {}, NP)
    split = plan_split(variant, layout, env, chunk_elements=6)
    assert split is not None and split.rows == 6 and split.chunk_rows == 2
    assert "input" in split.cut and "target" in split.cut and "weight" not in split.cut
    found = row_bindings(variant, env, split, NP)
    assert found is not None and "loss" in found[0].kept and "total_w" not in found[0].chunked
    assert plan_split(variant, layout, env, chunk_elements=18) is None  # one chunk holds it all


def test_a_formula_whose_rows_read_each_other_is_evaluated_in_one_piece():
    """``loss`` divides each row by the largest score of the whole batch, inside one expression:
    every binding keeps the rows on its leading axis, and only the probe sees the coupling."""
    spec = shipped_specs()["mse_loss"]
    variant = spec.variants[0]
    coupled = dataclasses.replace(variant, bindings=(("loss", compile_formula("input / absmax(input)", ["input"])),))
    inputs = {"input": np.arange(1.0, 9.0).reshape(8), "target": np.zeros(8)}
    env, layout = build_env(spec, coupled, inputs, {}, NP)
    split = plan_split(coupled, layout, env, chunk_elements=2)
    assert split is not None and row_bindings(coupled, env, split, NP) is None
    whole = evaluate(spec, coupled, inputs, {}, NP, ("none",)).outputs["none"]
    parts = evaluate_in_chunks(spec, coupled, inputs, {}, NP, ("none",), chunk_elements=2).outputs["none"]
    np.testing.assert_array_equal(parts, whole)
    assert whole[-1] == 1.0


def test_the_large_checks_oracle_is_chunked():
    """A case of the large check's sizes is cut into chunks (cross_entropy: N rows of C classes)."""
    spec = shipped_specs()["cross_entropy"]
    variant = spec.variant("class_index")
    inputs = {"input": np.zeros((64, 40000)), "target": np.zeros(64, dtype=np.int64)}
    env, layout = build_env(spec, variant, inputs, {}, NP)
    split = plan_split(variant, layout, env)
    assert split is not None and split.chunk_rows == 26
