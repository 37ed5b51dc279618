"""What a known deviation can be scoped to: torch versions (a PEP 440 specifier), the check's dtype
and device in its ``when``, the kinds of failure it covers; and the notice of a deviation that no longer occurs names the one whose
condition held."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from loss_conformance.backends import load_backend
from loss_conformance.case import Case
from loss_conformance.deviations import applicable, matching
from loss_conformance.reproduce import snippet
from loss_conformance.planning import plan
from loss_conformance.runner import Runner
from loss_conformance_reference import SpecError, shipped_specs
from loss_conformance_reference.loader import load_deviations
from loss_conformance_reference.model import DEFAULT_FAILURES, FAILURE_KINDS

SPECS = shipped_specs()


def _load(tmp_path: Path, body: str):
    path = tmp_path / "deviations.yaml"
    path.write_text("format: 1\ndeviations:\n  - loss: l1_loss\n    checks: [forward]\n    reason: r\n" + body,
                    encoding="utf-8")
    return path, load_deviations(path, SPECS)


def _with(deviations) -> dict:
    return {**SPECS, "l1_loss": dataclasses.replace(SPECS["l1_loss"], deviations=tuple(deviations))}


@pytest.mark.parametrize("versions,applies_to", [
    (">=2.14", {"2.14.1", "2.15.0"}),
    ("<2.7", {"2.1.0", "2.6.0"}),
    (">=2.1,<2.7", {"2.1.0", "2.6.0"}),
    ("", {"2.1.0", "2.6.0", "2.13.0+cpu", "2.14.1", "2.15.0"}),
])
def test_a_deviation_applies_to_the_torch_versions_it_names(tmp_path, versions, applies_to):
    _, loaded = _load(tmp_path, f"    torch: '{versions}'\n" if versions else "")
    spec = _with(loaded["l1_loss"])["l1_loss"]
    for version in ("2.1.0", "2.6.0", "2.13.0+cpu", "2.14.1", "2.15.0"):
        found = applicable(spec, "any backend", "forward", "float32", torch_version=version)
        assert bool(found) == (version in applies_to), (versions, version)


def test_the_installed_torch_decides_by_default(tmp_path):
    current = torch.__version__.split("+")[0]
    _, now = _load(tmp_path, f"    torch: '=={current}'\n")
    assert applicable(_with(now["l1_loss"])["l1_loss"], "b", "forward")
    _, other = _load(tmp_path, f"    torch: '!={current}'\n")
    assert not applicable(_with(other["l1_loss"])["l1_loss"], "b", "forward")


def test_a_bad_version_specifier_is_a_spec_error_at_its_line(tmp_path):
    with pytest.raises(SpecError) as info:
        _load(tmp_path, "    torch: 'newer than 2.1'\n")
    assert info.value.line == 6 and info.value.field.endswith("torch") and "specifier" in str(info.value)


def test_a_when_sees_the_checks_dtype_and_device(tmp_path):
    _, loaded = _load(tmp_path, "    when: \"(dtype == 'float16') & (device == 'cpu')\"\n")
    (deviation,) = loaded["l1_loss"]
    assert matching((deviation,), lambda: {"dtype": "float16", "device": "cpu"}) is deviation
    assert matching((deviation,), lambda: {"dtype": "float32", "device": "cpu"}) is None


def test_no_longer_deviates_names_the_deviation_whose_condition_held(tmp_path):
    _, loaded = _load(tmp_path, "    when: \"numel(input) < 0\"\n"
                                "  - loss: l1_loss\n    checks: [forward]\n    reason: the one that holds\n"
                                "    when: \"numel(input) >= 0\"\n")
    specs = _with(loaded["l1_loss"])
    with Runner(specs, load_backend("torch.nn.functional"), 3, 0) as runner:
        records = runner.run(plan([specs["l1_loss"]], ["float64"], ["cpu"], ("forward",)))
    assert records and all(r.status == "pass" for r in records)
    for record in records:
        assert record.deviation["reason"] == "the one that holds" and record.deviation["no_longer_occurs"] == 3
        assert torch.__version__ in record.message


def test_a_snippet_keeps_an_empty_shape():
    case = Case("mse_loss", "default", "any_shape", "float64",
                {"input": np.zeros((0, 2, 0)), "target": np.zeros((0, 2, 0)), "weight": None}, {"reduction": "none"})
    scope: dict = {}
    exec(compile(snippet(case, "torch.nn.functional", "cpu", "forward"), "snippet", "exec"), scope)
    assert tuple(scope["actual"].shape) == (0, 2, 0) == tuple(scope["expected"].shape)


# triplet_margin_loss's forward-mode deviation at underflowing norms: the `when` against torch itself.
TRIPLET_UNDERFLOW = [  # (shape, p, eps, whether the when holds)
    ((1,), 3.0, 8.624881383859565e-189, True),  # |d|^2 underflows: torch's tangent is 0 / 0
    ((2, 2), 2.0, 8.624881383859565e-189, True),  # sum d_i^2 underflows: torch's norm and tangent are 0
    ((3, 1), 4.0, 1e-150, True),
    ((1,), 3.0, 1e-100, False),  # representable powers: torch's tangent is right
    ((2, 2), 2.0, 1e-100, False),
    ((1,), 2.0, 8.624881383859565e-189, False),  # p = 2 over one component: d / |d|, no power
]


@pytest.mark.parametrize("shape,p,eps,holds", TRIPLET_UNDERFLOW)
def test_the_triplet_forward_ad_underflow_deviation_holds_where_torchs_tangent_is_wrong(shape, p, eps, holds):
    from loss_conformance.oracle import Oracle
    from loss_conformance.timing import Timings

    spec = SPECS["triplet_margin_loss"]
    [deviation] = [d for d in applicable(spec, "torch.nn.functional", "forward_ad", "float64")
                   if "norm_jvp" in d.reference]
    zeros = {name: np.zeros(shape) for name in ("anchor", "positive", "negative")}
    tangents = {"anchor": np.full(shape, 1.0), "positive": np.full(shape, 0.5), "negative": np.full(shape, -2.0)}
    params = {"reduction": "sum", "p": p, "eps": eps}
    variant = spec.variants[0]
    layout = next(lay.name for lay in variant.layouts if (len(shape) == 1) == bool(lay.unbatched))
    case = Case(spec.id, variant.name, layout, "float64", zeros, params)
    oracle = Oracle(spec, "cpu", Timings())
    scope = {**oracle.env(case), "dtype": "float64", "device": "cpu"}
    assert (matching((deviation,), lambda: scope) is deviation) == holds
    want = float(oracle.jvp(case, "sum", tangents))
    _, got = torch.func.jvp(
        lambda a, q, n: torch.nn.functional.triplet_margin_loss(a, q, n, p=p, eps=eps, reduction="sum"),
        tuple(torch.from_numpy(zeros[n]) for n in zeros), tuple(torch.from_numpy(tangents[n]) for n in zeros))
    # The direction moves the positive and the negative apart from the anchor: the true tangent is not 0.
    assert abs(want) > 0.1
    assert np.isclose(float(got), want, rtol=1e-9) != holds, (float(got), want)


def test_a_when_may_read_the_formulas_named_values(tmp_path):
    # kl_div's formula binds live = target > -inf: a user's deviation can say "where a term is dead"
    # with it instead of restating the expression; it excuses what torch's own entry excuses.
    import json

    from loss_conformance.cli import main
    path = tmp_path / "deviations.yaml"
    path.write_text("format: 1\ndeviations:\n  - loss: kl_div\n    checks: [forward]\n"
                    "    when: \"any(where(log_target, ~live, target == 0))\"\n"
                    "    reason: 0 log 0 computed literally\n", encoding="utf-8")
    args = ["run", "--backend", "tests.torch_port", "--loss", "kl_div", "--check", "forward", "--seed", "0",
            "--no-torch-baseline", "--quiet"]
    statuses = {}
    for name, extra in (("named", ["--known-deviations", str(path)]), ("torch", ["--inherit-torch-deviations"])):
        out = tmp_path / f"{name}.json"
        assert main([*args, "--json", str(out), *extra]) == 0
        statuses[name] = [(r["reduction"], r["dtype"], r["status"]) for r in json.loads(out.read_text())["records"]]
    assert statuses["named"] == statuses["torch"]
    assert any(status == "known_deviation" for _, _, status in statuses["named"])


def test_one_large_example_that_passes_is_no_news_of_a_fix(tmp_path):
    # Over millions of elements a deviation's effect can average out below the tolerance: the large
    # check's single example passing where the condition held says nothing of torch having fixed it.
    _, loaded = _load(tmp_path, "    when: \"numel(input) >= 0\"\n")
    specs = _with(loaded["l1_loss"])
    large = [c for c in plan([specs["l1_loss"]], ["float32"], ["cpu"], ("large",)) if c.reduction == "sum"]
    with Runner(specs, load_backend("torch.nn.functional"), 3, 0) as runner:
        (record,) = runner.run(large)
    assert record.status == "pass" and not record.deviation and "no longer occurs" not in (record.message or "")


@pytest.mark.parametrize("backend, failures, status", [
    ("l1_in_float64", "", "fail"),  # a wrong dtype is no numerical deviation: not covered by default
    ("l1_in_float64", "[dtype]", "known_deviation"),
    ("l1_in_float64", "[values, raises]", "fail"),
    ("broken_l1", "", "known_deviation"),  # wrong values are covered by default
    ("broken_l1", "[values]", "known_deviation"),
    ("broken_l1", "[dtype, shape]", "fail"),
])
def test_a_deviation_covers_the_kinds_of_failure_it_names(tmp_path, backend, failures, status):
    _, loaded = _load(tmp_path, f"    failures: {failures}\n" if failures else "")
    specs = _with(loaded["l1_loss"])
    with Runner(specs, load_backend(f"tests.sample_backends:{backend}"), 20, 0) as runner:
        records = runner.run(plan([specs["l1_loss"]], ["float32"], ["cpu"], ("forward",)))
    # broken_l1 is wrong for the mean only; the wrong dtype shows in every reduction
    wrong = [r for r in records if backend == "l1_in_float64" or r.reduction == "mean"]
    assert wrong and {r.status for r in wrong} == {status}, [(r.reduction, r.status, r.message) for r in records]


def test_an_unknown_kind_of_failure_is_a_spec_error_at_its_line(tmp_path):
    with pytest.raises(SpecError) as info:
        _load(tmp_path, "    failures: [wrong_answer]\n")
    assert info.value.line == 6 and "failures" in info.value.field


def test_the_schemas_name_the_kinds_of_failure_the_harness_reads():
    root = Path(__file__).resolve().parent.parent / "spec"
    loss = json.loads((root / "loss.schema.json").read_text())
    user = json.loads((root / "deviations.schema.json").read_text())
    entry = loss["properties"]["known_deviations"]["items"]["properties"]["failures"]
    assert entry["items"]["enum"] == list(FAILURE_KINDS)
    assert user["properties"]["deviations"]["items"]["properties"]["failures"]["items"]["enum"] == list(FAILURE_KINDS)
    assert set(DEFAULT_FAILURES) < set(FAILURE_KINDS)
