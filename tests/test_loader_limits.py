"""Spec loading at its limits: the bounds of reference_impl/limits.py, and known deviations whose
`when` fails at run time (a SpecError at its own file and line)."""
from __future__ import annotations

from pathlib import Path

import pytest

from loss_conformance_reference import SpecError, load_spec, shipped_specs
from loss_conformance_spec import LOSSES_DIR
from tests.test_loader import L1, ROOT, assert_located, line_of, load_error, mutate, write

# ---------------------------------------------------------------------------------------------
# Limits (reference_impl/limits.py; every hostile file in tests/hostile is run through the CLI
# by test_hostile_files.py): here the bounds themselves
# ---------------------------------------------------------------------------------------------

def test_the_schema_repeats_the_limits_module():
    import json

    from loss_conformance_reference import limits

    schema = json.loads((ROOT / "spec" / "loss.schema.json").read_text(encoding="utf-8"))
    dim = schema["properties"]["dims"]["additionalProperties"]["properties"]
    assert dim["min"]["maximum"] == dim["max"]["maximum"] == limits.MAX_DIM
    assert dim["rank"]["items"]["maximum"] == limits.MAX_VARIADIC_RANK
    assert schema["$defs"]["input"]["properties"]["min"]["maximum"] == limits.MAX_DIM
    tol = schema["$defs"]["tol"]["properties"]
    assert (tol["rtol"]["maximum"], tol["atol"]["maximum"]) == (limits.MAX_RTOL, limits.MAX_ATOL)
    assert tol["rtol"]["minimum"] == tol["atol"]["minimum"] == 0
    assert schema["properties"]["examples"]["maxItems"] == limits.MAX_EXAMPLES


def test_aliases_within_the_bounds_load_and_past_them_are_refused(tmp_path):
    from loss_conformance_reference.limits import MAX_YAML_ALIASES

    def with_symbols(count: int) -> str:
        extra = "  - &sym {symbol: \"z\", en: \"zed\"}\n" + "  - *sym\n" * count
        return mutate(L1, "symbols:\n", "symbols:\n" + extra)

    assert load_spec(write(tmp_path, with_symbols(MAX_YAML_ALIASES), "ok.yaml")).id == "l1_loss"
    text = with_symbols(MAX_YAML_ALIASES + 1)
    err = load_error(write(tmp_path, text))
    assert f"more than {MAX_YAML_ALIASES} aliases" in err.message
    assert err.line == line_of(text, "  - *sym", MAX_YAML_ALIASES + 1) and err.field == "symbols"


def test_nesting_through_aliases_is_bounded(tmp_path):
    from loss_conformance_reference.limits import MAX_YAML_DEPTH

    half = MAX_YAML_DEPTH // 2 + 2  # under the bound as written, over it once the alias is expanded
    text = mutate(L1, "symbols:\n", "symbols:\n  - &deep " + "[" * half + "]" * half + "\n  - " + "[" * half
                  + "*deep" + "]" * half + "\n")
    err = load_error(write(tmp_path, text))
    assert "once aliases are expanded" in err.message and err.field.startswith("symbols[1]")


def test_a_nan_gradient_tolerance_is_refused(tmp_path):
    text = mutate(L1, "  gradient:\n", "  gradient:\n    float64: {rtol: 1.0e-6, atol: .nan}\n")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "atol: .nan"), "tolerance.gradient.float64.atol", "not nan")


def test_a_variadic_rank_with_low_above_high_is_refused(tmp_path):
    text = mutate(L1, "s: {rank: [0, 3], min: 0, max: 4,", "s: {rank: [3, 0], min: 0, max: 4,")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "s: {rank"), "dims.s.rank", "low rank 3")


def test_an_empty_file_is_refused_on_its_first_line(tmp_path):
    path = write(tmp_path, "")
    assert_located(load_error(path), path, 1, "(document)", "not of type 'object'")


# ---------------------------------------------------------------------------------------------
# Known deviations: a `when` that fails at run time is a SpecError pointing at its file and line
# ---------------------------------------------------------------------------------------------

def _user_deviations(tmp_path: Path, when: str) -> Path:
    return write(tmp_path, "format: 1\ndeviations:\n  - loss: l1_loss\n    checks: [forward]\n"
                           f"    when: \"{when}\"\n    reason: r\n", "deviations.yaml")


def test_deviations_carry_the_origin_of_their_when(tmp_path):
    from loss_conformance_reference.loader import load_deviations

    kl = shipped_specs()["kl_div"]
    text = (LOSSES_DIR / "kl_div.yaml").read_text(encoding="utf-8")
    origin = kl.deviations[1].origin
    assert (origin.path, origin.field) == (str(kl.path), "known_deviations[1].when")
    assert origin.line == line_of(text, 'when: "(log_target == False)')
    assert all(d.origin is not None for s in shipped_specs().values() for d in s.deviations)
    path = _user_deviations(tmp_path, "numel(input) > 0")
    (dev,) = load_deviations(path, shipped_specs())["l1_loss"]
    assert (dev.origin.path, dev.origin.line, dev.origin.field) == (str(path), 5, "deviations[0].when")


@pytest.mark.parametrize("when, message", [
    ("reduction - 1 > 0", "failed on an example: TypeError"),
    ("reduction", "gave a str on an example, not a truth value"),
    ("numel(reduction * 10 ** 10) > 0", "longer than 1024"),
])
def test_a_when_that_fails_at_run_time_is_a_spec_error(tmp_path, when, message):
    import numpy as np

    from loss_conformance.deviations import matching
    from loss_conformance_reference.loader import load_deviations

    path = _user_deviations(tmp_path, when)
    devs = load_deviations(path, shipped_specs())["l1_loss"]
    with pytest.raises(SpecError) as info:
        matching(devs, lambda: {"input": np.zeros(2), "target": np.zeros(2), "reduction": "mean"})
    assert (info.value.path, info.value.line, info.value.field) == (str(path), 5, "deviations[0].when")
    assert message in info.value.message and when in info.value.message


@pytest.mark.parametrize("when, hit", [
    ("numel(input) > 0", True),
    ("numel(input) > 5", False),
    ("input > 0", True),           # an array holds when any element does
    ("input > 5", False),
    ("input * 0", False),
    ("size(input, 0)", True),      # a number: bool() as before
    ("reduction == 'mean'", True),
])
def test_when_values_reduce_to_one_truth_value(tmp_path, when, hit):
    import numpy as np

    from loss_conformance.deviations import matching
    from loss_conformance_reference.loader import load_deviations

    devs = load_deviations(_user_deviations(tmp_path, when), shipped_specs())["l1_loss"]
    env = {"input": np.array([1.0, -1.0]), "target": np.zeros(2), "reduction": "mean"}
    assert (matching(devs, lambda: env) is not None) == hit


# ---------------------------------------------------------------------------------------------
# libyaml's fast composer, and the bounded pure-Python one where a document is near a bound
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", sorted(LOSSES_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_fast_composer_gives_what_the_bounded_one_gives(path):
    from loss_conformance_reference import yaml_lines

    if not getattr(yaml_lines.yaml, "__with_libyaml__", False):
        pytest.skip("PyYAML without libyaml")
    text = path.read_text(encoding="utf-8")
    fast = yaml_lines._compose_fast(text)
    assert fast is not yaml_lines._SLOW
    fast_lines, bounded_lines = {}, {}
    assert yaml_lines._Converter(fast_lines).convert(fast, ()) == \
        yaml_lines._Converter(bounded_lines).convert(yaml_lines._compose_bounded(text), ())
    assert fast_lines == bounded_lines


@pytest.mark.parametrize("text", [
    "a: " + "[" * 40 + "]" * 40 + "\n",  # nested past MAX_YAML_DEPTH
    "a: &x 1\nb: [" + ", ".join(["*x"] * 300) + "]\n",  # past MAX_YAML_ALIASES
    "a: [1, 2\n",  # not valid YAML
    "a: \x07\n",  # a control character
])
def test_a_document_near_a_bound_or_wrong_is_left_to_the_bounded_composer(text):
    from loss_conformance_reference import yaml_lines

    assert yaml_lines._compose_fast(text) is yaml_lines._SLOW
    with pytest.raises(yaml_lines.YamlError):
        yaml_lines.load_with_lines(text)
