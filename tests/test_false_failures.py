"""No false failures: a property allows for the rounding of the inputs it substitutes, and only
substitutes options the backend accepts."""
from __future__ import annotations

import numpy as np
import pytest

from loss_conformance.backends import FunctionalBackend
from loss_conformance.case import Case
from loss_conformance.checks import CheckContext, check_properties
from loss_conformance.oracle import Oracle
from loss_conformance.planning import plan
from loss_conformance.runner import Runner
from loss_conformance.timing import Timings
from loss_conformance_reference import shipped_specs
from tests import sample_backends

SPECS = shipped_specs()


def test_flip_property_allows_for_the_rounding_of_one_minus_target():
    # 1 - t rounds by 4.5e-17 in float64 for this t (checked below); the loss moves by that times
    # |x| = 1e4, i.e. 2.3e-13 on a loss of 6.4e-4: more than rtol 1e-12 + atol 1e-13 without the
    # spec's error magnitude, well inside it with it.
    spec = SPECS["multilabel_soft_margin_loss"]
    t = 1.2764354024785743e-07
    assert abs((1 - (1 - t)) - t) > 4e-17
    case = Case(spec.id, "default", "batch", "float64",
                {"input": np.array([[-1e4, 40.0]]), "target": np.array([[t, 1.0]]), "weight": None}, {},
                dims={"N": 1, "C": 2})
    with Runner(SPECS, "torch.nn.functional", 5, 0) as runner:
        ctx = CheckContext(spec, runner.backend, Oracle(spec, "cpu", Timings()), "float64", "cpu", "*", Timings())
        check_properties(ctx, case, None)  # raises CheckFailure on a false failure


@pytest.mark.parametrize("seed", range(5))
def test_properties_substitute_only_options_the_backend_takes(seed):
    backend = FunctionalBackend(sample_backends.no_weight, "no_weight")
    with Runner(SPECS, backend, 20, seed) as runner:
        records = runner.run(plan([SPECS["binary_cross_entropy_with_logits"]], ["float32", "float64"], ["cpu"],
                                  ["properties", "forward"]))
    assert records and all(r.status == "pass" for r in records), [(r.check, r.message[:200]) for r in records]


def test_a_property_failure_is_matched_against_the_substituted_inputs_too():
    # flipping_the_label_adds_the_margin calls the loss with -target as well: a score of 12 on the
    # right side is 12 on the wrong side once flipped, past float16's overflow threshold of 11.09,
    # where torch's exp overflows. The deviation's `when` does not hold for the drawn case, only for
    # the substituted one; the failure names both, and the runner matches either.
    from loss_conformance.checks import CheckFailure
    from loss_conformance.deviations import applicable, matching

    spec = SPECS["soft_margin_loss"]
    case = Case(spec.id, "default", "any_shape", "float16",
                {"input": np.array([12.0], dtype=np.float16), "target": np.array([1.0], dtype=np.float16)}, {},
                dims={"s": (1,)})
    oracle = Oracle(spec, "cpu", Timings())
    deviations = applicable(spec, "torch.nn.functional", "properties", "float16")
    assert matching(deviations, lambda: oracle.env(case)) is None
    with Runner(SPECS, "torch.nn.functional", 5, 0) as runner:
        ctx = CheckContext(spec, runner.backend, oracle, "float16", "cpu", "*", Timings())
        with pytest.raises(CheckFailure) as failure:
            check_properties(ctx, case, None)
    called_on = failure.value.called_on
    assert [float(c.inputs["target"][0]) for c in called_on] == [1.0, -1.0]
    assert matching(deviations, lambda: oracle.env(called_on[1])) is not None
