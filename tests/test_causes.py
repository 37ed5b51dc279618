"""A failing check looks for more than one cause (--counterexamples): after its first failure it
searches again, passing over the causes found, so a mild difference does not hide a severe one."""
from __future__ import annotations

import json

import pytest

from loss_conformance.causes import cause_of, failure_kind
from loss_conformance_reference import shipped_specs
from loss_conformance_reference.model import FAILURE_KINDS
from tests.test_cli import cli

TRIPLET = shipped_specs()["triplet_margin_loss"]
HUBER = shipped_specs()["huber_loss"]
SMALL = ("output values differ: Scalars are not close!; Absolute difference: 0.00195 (up to 1.4e-05 allowed); "
         "Relative difference: 0.00195 (up to 1e-05 allowed); actual=0.999023438 expected=1.00097454")
LARGE = ("output values differ: Tensor-likes are not close!; Greatest absolute difference: 6.0 at index (0,) (up to "
         "1e-13 allowed); Greatest relative difference: 6.0 at index (0,) (up to 1e-12 allowed); actual=[7] expected=[1]")
NAN = ("gradient of anchor values differ: Tensor-likes are not close!; Greatest absolute difference: nan at index (0,)"
       " (up to 1e-05 allowed); Greatest relative difference: nan at index (0,) (up to 0.0001 allowed); "
       "actual=[nan, nan] expected=[0, 0]")


def test_a_cause_is_the_kind_of_failure_and_the_options_it_needs():
    mild = cause_of(SMALL, {"reduction": "mean"}, TRIPLET)  # the default reduction is no option set
    assert str(mild) == "output values differ: small"
    severe = cause_of(LARGE, {"p": 1.0, "eps": 0.0}, TRIPLET)
    assert severe.kind == "output values differ: large" and severe.options == {"p", "eps"}
    assert str(severe) == "output values differ: large (eps=0.0, p=1.0)"
    assert severe.covers(cause_of(LARGE, {"p": 3.0, "eps": 0.0, "margin": 2.0}, TRIPLET))  # any values
    assert not mild.covers(severe) and not severe.covers(mild)
    assert mild.covers(cause_of(SMALL, {"margin": 0.5}, TRIPLET))  # the same difference with a margin set
    assert cause_of(NAN, {}, TRIPLET).kind == "gradient of anchor values differ: non-finite"
    assert cause_of("backend raised ZeroDivisionError: float division by zero", {}, TRIPLET).kind == \
        "backend raised ZeroDivisionError"
    assert cause_of("property 'non_negative' does not hold: ...", {}, TRIPLET).kind == "property non_negative"


def _forward(tmp_path, seed: int, counterexamples: int) -> list[dict]:
    out = tmp_path / f"{seed}-{counterexamples}.json"
    done = cli("run", "--backend", "tests.sample_backends:huber_two_bugs", "--loss", "huber_loss", "--check", "forward",
               "--dtype", "float64", "--no-torch-baseline", "--seed", str(seed), "--max-examples", "30",
               "--counterexamples", str(counterexamples), "--json", str(out))
    assert done.returncode == 1, done.stdout + done.stderr
    return json.loads(out.read_text())["records"]


@pytest.mark.parametrize("seed", range(3))
def test_a_mild_difference_does_not_hide_a_severe_one(tmp_path, seed):
    # huber_two_bugs is off by a relative 2^-10 everywhere and ignores delta: each reduction's forward
    # check reports both causes, once each, the severe one with the delta it needs.
    for record in _forward(tmp_path, seed, 3):
        found = [(cause_of(record["message"], record["counterexample"]["params"], HUBER).kind,
                  record["counterexample"]["params"])]
        found += [(o["cause"].split(" (")[0], o["counterexample"]["params"]) for o in record["detail"]["other_causes"]]
        assert sorted(kind for kind, _ in found) == ["output values differ: large", "output values differ: small"]
        assert all(params.get("delta", 1.0) != 1.0 for kind, params in found if kind.endswith("large"))


def test_one_counterexample_stops_at_the_first(tmp_path):
    assert all("other_causes" not in (r.get("detail") or {}) for r in _forward(tmp_path, 0, 1))


@pytest.mark.parametrize("message, kind", [
    ("output values differ: Scalars are not close!; Expected 1.0 but got nan.", "values"),
    ("gradient of input values differ: Tensor-likes are not close!", "values"),
    ("tangent by torch.func.jvp values differ: Scalars are not close!", "values"),
    ("gradcheck failed: Jacobian mismatch for output 0 with respect to input 0, numerical:-0.95", "values"),
    ("tangent by torch.func.jvp dtype torch.float64 != expected torch.float32", "dtype"),
    ("output shape (2,) != expected ()", "shape"),
    ("output on device cpu != expected cuda", "device"),
    ("output is a float, not a torch.Tensor", "type"),
    ("output carries no gradient to input", "no_gradient"),
    ("backend raised RuntimeError: expected scalar type Float", "raises"),
    ("backward raised ZeroDivisionError: division by zero", "raises"),
    ("torch.func.jvp raised NotImplementedError: no forward AD formula", "raises"),
    ("gradgradcheck failed: grad_input must be contiguous", "raises"),
    ("property 'symmetric_in_the_two_inputs' does not hold: close(out_none, orig_none), where", "property"),
    ("the backend wrote into its input 'target'", "other"),
])
def test_the_kind_of_a_failure_is_read_from_its_message(message, kind):
    assert failure_kind(message) == kind
    assert kind in FAILURE_KINDS
