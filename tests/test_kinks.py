"""Subgradients at kinks: the loader's checks of ``gradient: kinks:`` and of worked examples'
``gradients:``, the span the backward and forward_ad checks accept, and the meta-tests: a hinge that
takes the other end of the subdifferential at a tie passes (and is reported as having taken it),
one whose tie derivative lies outside it fails (``tests/broken/kinks.py``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from loss_conformance.backends import FunctionalBackend, load_backend
from loss_conformance.case import Case
from loss_conformance.kinks import KinkSpan, hvp_span, kink_span
from loss_conformance.oracle import Oracle
from loss_conformance.records import FAILING
from loss_conformance.timing import Timings
from loss_conformance_reference import shipped_specs
from loss_conformance_reference.examples import example_inputs
from loss_conformance_reference.model import Kink
from tests.broken.kinks import ACTIVE_AT_THE_TIE, CATALOGUE, OTHER_END
from tests.helpers import run_suite
from tests.test_loader import L1, assert_located, line_of, load_error, mutate, write

KINK = "    - {name: abs, of: a, at: input - target, derivative: [-1.0, 1.0]}\n"
TIE_GRADIENTS = "      input: {low: [-1.0, 1.0], high: [1.0, 1.0]}\n"


# --- the loader ----------------------------------------------------------------------------------

@pytest.mark.parametrize("new,field,words", [
    ("of: nope, at: input - target, derivative: [-1.0, 1.0]", "gradient.kinks[0].of",
     ("'nope' is not a binding",)),
    ("of: a, at: input - targett, derivative: [-1.0, 1.0]", "gradient.kinks[0].at", ("unknown name 'targett'",)),
    # ``at`` is evaluated where ``of`` is bound: a later binding is not in scope
    ("of: a, at: loss, derivative: [-1.0, 1.0]", "gradient.kinks[0].at", ("unknown name 'loss'",)),
    ("of: a, at: input.real, derivative: [-1.0, 1.0]", "gradient.kinks[0].at", ("input.real",)),
    ("of: a, at: input - target, derivative: [1.0, -1.0]", "gradient.kinks[0].derivative", ("low 1.0 is above high -1.0",)),
    ("of: a, at: input - target, derivative: [-.inf, 1.0]", "gradient.kinks[0].derivative", ("finite",)),
    ("of: a, at: input - target, derivative: [1.0]", "gradient.kinks[0].derivative", ("too short",)),
    ("of: a, at: input - target, derivative: [-1.0, 1.0], variants: [nope]", "gradient.kinks[0].variants[0]",
     ("no variant 'nope'",)),
    ("of: a, at: input - target, derivative: [-1.0, 1.0], where: x", "gradient.kinks[0]", ("where",)),
])
def test_a_bad_kink_declaration_names_its_line_and_field(tmp_path, new, field, words):
    text = mutate(L1, "of: a, at: input - target, derivative: [-1.0, 1.0]", new)
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "    - {name: abs"), field, *words)


def test_two_kinks_of_one_name_are_refused(tmp_path):
    text = mutate(L1, KINK, KINK + "    - {name: abs, of: w, at: input, derivative: [0.0, 1.0]}\n")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "    - {name: abs", 2), "gradient.kinks[1].name",
                   "another kink is named 'abs'")


def test_a_kink_is_compiled_for_its_variant():
    kinks = shipped_specs()["l1_loss"].variant("default").kinks
    assert [(k.name, k.of, k.at.text, k.low, k.high) for k in kinks] == [("abs", "a", "input - target", -1.0, 1.0)]


@pytest.mark.parametrize("new,words", [
    ("      weight: {low: [-1.0, 1.0], high: [1.0, 1.0]}\n", ("'weight' is not a differentiable input",)),
    ("      input: {low: [-1.0], high: [1.0]}\n", ("low of shape [1], the input's is [2]",)),
    ("      input: [1.0, 1.0, 1.0]\n", ("gradient of shape [3], the input's is [2]",)),
    ("      input: {low: [1.0, 1.0], high: [-1.0, 1.0]}\n", ("low is above high",)),
])
def test_a_bad_example_gradient_names_its_line_and_field(tmp_path, new, words):
    text = mutate(L1, TIE_GRADIENTS, new)
    path = write(tmp_path, text)
    name = new.split(":")[0].strip()
    err = load_error(path)
    assert_located(err, path, line_of(text, new.rstrip("\n")), f"examples[3].gradients.{name}", *words)


# --- the span ------------------------------------------------------------------------------------

def _span(low: float = 0.0, high: float = 1.0) -> KinkSpan:
    # The gradient at derivative ``low`` is ``base``, at ``high`` base + step, element by element.
    kink = Kink("hinge", "loss", None, low, high)  # type: ignore[arg-type]
    return KinkSpan((kink,), {"x": np.array([0.0, 1.0, -2.0])}, ({"x": np.array([1.0, 0.0, -1.0])},))


def test_the_span_is_the_box_between_the_ends():
    span = _span()
    np.testing.assert_array_equal(span.low("x"), [0.0, 1.0, -3.0])
    np.testing.assert_array_equal(span.high("x"), [1.0, 1.0, -2.0])
    # inside: itself; outside: the nearest end; NaN against a finite oracle: an end (so it fails)
    np.testing.assert_array_equal(span.nearest("x", np.array([0.25, 3.0, -4.0])), [0.25, 1.0, -3.0])
    assert not np.isnan(span.nearest("x", np.array([np.nan, 1.0, -2.5]))[0])


@pytest.mark.parametrize("fraction,said", [(0.0, "derivative 0 (left end)"), (1.0, "derivative 1 (right end)"),
                                           (0.5, "derivative 0.5 (inside [0, 1])")])
def test_the_chosen_derivative_is_read_off_the_gradient(fraction, said):
    span = _span()
    got = span.base["x"] + fraction * span.steps[0]["x"]
    assert span.chosen({"x": got}) == {"hinge": said}


def test_sign_of_zero_is_the_middle_of_the_absolute_values_interval():
    span = _span(-1.0, 1.0)
    assert span.chosen({"x": span.base["x"] + 0.5 * span.steps[0]["x"]}) == {"hinge": "derivative 0 (inside [-1, 1])"}


EXAMPLES_WITH_GRADIENTS = [(spec, example) for spec in shipped_specs().values() for example in spec.examples
                           if example.gradients]


def test_every_hinge_loss_has_a_worked_example_at_a_tie():
    hinges = {name for name, spec in shipped_specs().items() for v in spec.variants for k in v.kinks if k.low == 0.0}
    assert hinges >= {"margin_ranking_loss", "hinge_embedding_loss", "cosine_embedding_loss", "multi_margin_loss",
                      "multilabel_margin_loss", "triplet_margin_loss", "triplet_margin_with_distance_loss"}
    at_a_tie = {spec.id for spec, example in EXAMPLES_WITH_GRADIENTS
                if any(not np.array_equal(low, high) for low, high in example.gradients.values())}
    assert hinges <= at_a_tie


@pytest.mark.parametrize("spec,example", EXAMPLES_WITH_GRADIENTS,
                         ids=[f"{s.id}-{i}" for i, (s, _) in enumerate(EXAMPLES_WITH_GRADIENTS)])
def test_the_gradients_worked_by_hand_are_the_oracles_span(spec, example):
    # Two derivations of the same numbers: by hand in the spec, and by the reference's autograd with the
    # kink's derivative pinned at each end of its interval.
    inputs = {k: np.asarray(v) for k, v in example_inputs(spec, example).items()}
    case = Case(spec.id, example.variant, "", "float64", inputs, dict(example.params))
    oracle = Oracle(spec, "cpu", Timings())
    reduction = example.params.get("reduction", spec.params["reduction"].default)
    out, _ = oracle.forward(case, (reduction,))
    wrt = tuple(example.gradients)
    span = kink_span(oracle, case, reduction, np.ones(out[reduction].shape), wrt)
    if not any(v.kinks for v in spec.variants):  # no kink declared: the oracle's one gradient lies in the interval
        grads = oracle.vjp(case, reduction, np.ones(out[reduction].shape), wrt)
        for name, (low, high) in example.gradients.items():
            assert np.all((low - 1e-12 <= grads[name]) & (grads[name] <= high + 1e-12)), name
        return
    assert span is not None, "the example is meant to sit on a kink"
    for name, (low, high) in example.gradients.items():
        np.testing.assert_allclose(span.low(name), low, rtol=1e-9, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(span.high(name), high, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("t1, t2", [([1.0, 1.0], [1.0, 1.0]), ([0.5, -2.0], [3.0, 0.25]), ([-1.0, 0.0], [0.0, 4.0])])
def test_the_hessian_vector_products_at_a_tie_span_the_hinges_slope(t1, t2):
    """At a hinge's tie the slope s in [0, 1] scales the second derivative of what the hinge takes:
    the Hessian-vector product of max(0, cos(x1, x2)) at orthogonal x1, x2 ranges from 0 (s = 0) to
    that of cos itself (s = 1), here by autograd of a cosine written out, not of the spec."""
    spec = shipped_specs()["cosine_embedding_loss"]
    example = spec.examples[0]  # orthogonal x1 = (1, 0), x2 = (0, 1), label -1, margin 0: on the kink
    inputs = {k: np.asarray(v) for k, v in example_inputs(spec, example).items()}
    case = Case(spec.id, example.variant, "", "float64", inputs, dict(example.params))
    tangents = {"input1": np.array([t1]), "input2": np.array([t2])}
    span = hvp_span(Oracle(spec, "cpu", Timings()), case, "sum", np.array(1.0), tangents)
    assert span is not None

    def cosine(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
        return (x1 * x2).sum() / torch.sqrt((x1 * x1).sum() * (x2 * x2).sum())

    x = tuple(torch.tensor(inputs[n], dtype=torch.float64) for n in ("input1", "input2"))
    t = tuple(torch.tensor(tangents[n]) for n in ("input1", "input2"))
    _, by_hand = torch.autograd.functional.hvp(cosine, x, t)
    for name, right in zip(("input1", "input2"), by_hand):
        ends = np.sort(np.stack([np.zeros_like(right.numpy()), right.numpy()]), axis=0)
        np.testing.assert_allclose(span.low(name), ends[0], atol=1e-9, err_msg=name)
        np.testing.assert_allclose(span.high(name), ends[1], atol=1e-9, err_msg=name)
        assert np.any(ends[0] != ends[1]), "the tie moves the product"
    # Whichever end this torch's clamp boundary takes, its double backward lies in the span.
    leaves = [v.clone().requires_grad_() for v in x]
    loss = F.cosine_embedding_loss(*leaves, torch.tensor([-1.0], dtype=torch.float64), reduction="sum")
    grads = torch.autograd.grad(loss, leaves, create_graph=True)
    inner = sum((g * v).sum() for g, v in zip(grads, t))
    for name, got in zip(("input1", "input2"), torch.autograd.grad(inner, leaves)):
        chosen = span.nearest(name, got.numpy())
        np.testing.assert_allclose(got.numpy(), chosen, atol=1e-9, err_msg=name)


# --- meta-tests ----------------------------------------------------------------------------------

OTHER_END_SEEDS = range(3)
CHECKS = ("examples", "forward", "backward", "forward_ad")


RIGHT_AT_THE_TIE = [(b, "derivative 0 (left end)") for b in OTHER_END] + \
    [(b, "derivative 1 (right end)") for b in ACTIVE_AT_THE_TIE]


@pytest.mark.parametrize("seed", OTHER_END_SEEDS)
@pytest.mark.parametrize("broken,said", RIGHT_AT_THE_TIE, ids=[b.name for b, _ in RIGHT_AT_THE_TIE])
def test_the_other_end_of_the_interval_passes_and_is_reported(broken, said, seed):
    backend = FunctionalBackend(broken.backend_object(), broken.name)
    records = run_suite(backend, losses=[broken.loss], seed=seed, checks=CHECKS)
    bad = [(r.check, r.reduction, r.dtype, r.status, r.message[:300]) for r in records if r.status in FAILING]
    assert records and not bad
    chosen = {k["chosen"] for r in records if r.check == "backward" for k in (r.detail or {}).get("kinks", [])}
    assert chosen == {said}, chosen
    assert any(f"at the kink of hinge: {said}" in r.message for r in records)


@pytest.mark.parametrize("broken", CATALOGUE, ids=[b.name for b in CATALOGUE])
def test_a_tie_derivative_outside_the_interval_fails_the_worked_example_at_the_tie(broken):
    # Deterministic, whatever the search draws: the spec's worked example at a tie states its gradients.
    backend = FunctionalBackend(broken.backend_object(), broken.name)
    (record,) = run_suite(backend, losses=[broken.loss], checks=("examples",))
    assert record.status == "fail" and "a tie at the kink" in record.message and "gradient of" in record.message


def test_torch_reports_the_derivative_it_takes_at_the_hinge():
    records = run_suite(load_backend("torch.nn.functional"), losses=["margin_ranking_loss"], checks=("backward",),
                        dtypes=("float64",))
    assert all(r.status == "pass" for r in records)
    assert any("at the kink of hinge: derivative" in r.message and r.detail and r.detail["kinks"] for r in records)
