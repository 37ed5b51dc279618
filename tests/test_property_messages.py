"""A failing property says exactly what it saw: values unrounded (a property that fails by one ulp
must not show two equal numbers) and, for one that substitutes inputs, what it substituted."""
from __future__ import annotations

import ast

import numpy as np

from loss_conformance.backends import load_backend
from tests.helpers import run_suite


def test_a_property_failure_shows_exact_values_and_the_substituted_inputs():
    records = run_suite(load_backend("tests.sample_backends:huber_lopsided"), losses=["huber_loss"], checks=("properties",),
                        dtypes=("float64",), max_examples=30, shrink=True)  # a few values, all shown
    failed = [r for r in records if r.status == "fail"]
    assert failed, [(r.status, r.message[:200]) for r in records]
    message = failed[0].message
    assert "property 'symmetric_in_input_and_target' does not hold" in message
    assert "; with input = target = " in message and ", target = input = " in message
    # out_none and orig_none differ in their last bits: exactly, their reprs differ too.
    out, orig = _value_of("out_none", message), _value_of("orig_none", message)
    assert out != orig and np.allclose(out, orig, rtol=1e-15, atol=0), message


def _value_of(name: str, message: str) -> object:
    """The number or nested list shown as ``name = ...`` in ``message``."""
    start = message.index(f"{name} = ") + len(name) + 3
    depth = 0
    for end, char in enumerate(message[start:], start):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth == 0 and char in ",;":
            return ast.literal_eval(message[start:end].strip())
    raise AssertionError(message)
