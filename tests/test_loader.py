"""Spec loading: the shipped specs load, and a bad spec file fails with a SpecError that names the
file, the line and the field (and ``loss-conformance validate`` exits 2 with it on stderr)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from loss_conformance_reference import SpecError, load_spec, load_specs, shipped_specs
from loss_conformance_reference.errors import FormulaError
from loss_conformance_reference.formula import Formula
from loss_conformance_spec import LOSSES_DIR

ROOT = Path(__file__).resolve().parents[1]
L1 = (LOSSES_DIR / "l1_loss.yaml").read_text(encoding="utf-8")
CE = (LOSSES_DIR / "cross_entropy.yaml").read_text(encoding="utf-8")


def mutate(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the mutation anchor {old!r} is not unique in the spec"
    return text.replace(old, new)


def line_of(text: str, marker: str, occurrence: int = 1) -> int:
    """1-based line of the ``occurrence``-th appearance of ``marker`` in ``text``."""
    at = -1
    for _ in range(occurrence):
        at = text.index(marker, at + 1)
    return text.count("\n", 0, at) + 1


def write(tmp_path: Path, text: str, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value


def assert_located(err: SpecError, path: Path, line: int, field: str, *words: str) -> None:
    assert err.path == str(path)
    assert err.line == line, f"line {err.line}, expected {line}: {err}"
    assert err.field == field, str(err)
    text = str(err)
    assert text.startswith(f"{path}:{line}: "), text
    assert f"'{field}'" in text, text
    for word in words:
        assert word in text, text


# ---------------------------------------------------------------------------------------------
# The shipped specs
# ---------------------------------------------------------------------------------------------

def test_every_shipped_spec_loads():
    files = sorted(LOSSES_DIR.glob("*.yaml"))
    specs = shipped_specs()
    assert {"binary_cross_entropy", "cross_entropy", "l1_loss", "mse_loss"} <= set(specs)
    assert len(specs) == len(files)
    for loss, spec in specs.items():
        assert spec.id == loss
        assert spec.path.name == f"{loss}.yaml"  # one file per loss, named by its id
        assert callable(getattr(torch.nn.functional, loss))
        assert hasattr(torch.nn, spec.module.name)
        assert spec.variants and all(v.layouts and v.bindings for v in spec.variants)
        for variant in spec.variants:
            assert set(variant.reductions) == set(spec.reductions)
            assert all(isinstance(f, Formula) for f in variant.reductions.values())
        assert "float64" in spec.tolerance


@pytest.mark.parametrize("path", sorted(LOSSES_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_each_file_loads_on_its_own(path):
    spec = load_spec(path)
    assert spec.id == path.stem


def test_two_files_with_one_id_are_refused(tmp_path):
    write(tmp_path, L1, "a.yaml")
    write(tmp_path, L1, "b.yaml")
    with pytest.raises(SpecError) as info:
        load_specs(tmp_path)
    assert info.value.field == "id"
    assert str(tmp_path / "b.yaml") in str(info.value)


def test_a_missing_file_is_a_spec_error(tmp_path):
    err = load_error(tmp_path / "absent.yaml")
    assert str(tmp_path / "absent.yaml") in str(err) and "cannot read" in str(err)


# ---------------------------------------------------------------------------------------------
# (a) schema violations
# ---------------------------------------------------------------------------------------------

def test_wrong_format_version(tmp_path):
    text = mutate(L1, "format: 1\n", "format: 2\n")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "format: 2"), "format")


def test_missing_required_top_level_key(tmp_path):
    text = mutate(L1, "title: L1 loss (mean absolute error)\n", "")
    path = write(tmp_path, text)
    # a missing key is reported on the object that lacks it (the document) and named in the message
    assert_located(load_error(path), path, 1, "(document)", "'title' is a required property")


def test_missing_required_key_inside_a_variant(tmp_path):
    text = mutate(L1, "    reductions:\n      none: loss\n      mean: sum(loss) / sum(w)\n      sum: sum(loss)\n", "")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "  - name: default"), "variants[0]",
                   "'reductions' is a required property")


def test_wrong_type_deep_inside_a_layout(tmp_path):
    text = mutate(L1, '      - {name: any_shape, shapes: {input: ["*s"], target: ["*s"]}}\n',
                  '      - name: any_shape\n'
                  '        shapes:\n'
                  '          input: ["*s"]\n'
                  '          target: "*s"\n')
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, 'target: "*s"'), "variants[0].layouts[0].shapes.target",
                   "is not of type 'array'")


def test_wrong_item_type_in_a_flow_layout(tmp_path):
    text = mutate(L1, 'shapes: {input: ["*s"], target: ["*s"]}', "shapes: {input: [3.5], target: [\"*s\"]}")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "input: [3.5]"), "variants[0].layouts[0].shapes.input[0]",
                   "3.5")


def test_unknown_key_is_refused(tmp_path):
    text = mutate(L1, "  input: {domain: real, differentiable: true}\n",
                  "  input: {domain: real, differentiable: true}\n  bogus: {domain: real, colour: red}\n")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "bogus:"), "inputs.bogus", "colour")


def test_wrong_type_of_a_boolean_flag(tmp_path):
    text = mutate(L1, "  double_backward: true\n", "  double_backward: sometimes\n")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "double_backward: sometimes"), "gradient.double_backward",
                   "boolean")


def test_min_above_max_of_a_dim(tmp_path):
    text = mutate(L1, "s: {rank: [0, 3], min: 0, max: 4,", "s: {rank: [0, 3], min: 5, max: 4,")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "s: {rank"), "dims.s", "min 5 is above max 4")


# ---------------------------------------------------------------------------------------------
# (b) unknown names and (c) disallowed syntax in formulas
# ---------------------------------------------------------------------------------------------

def test_unknown_name_in_a_formula(tmp_path):
    text = mutate(L1, "a: abs(input - target)", "a: abs(input - targett)")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "      a: abs("), "variants[0].formula.a",
                   "unknown name 'targett'", "'targett'")


def test_later_binding_is_not_in_scope_of_an_earlier_one(tmp_path):
    text = mutate(L1, "      w: weight * ones_like(input)\n", "      w: weight * ones_like(input) + 0 * loss\n")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "      w: weight"), "variants[0].formula.w",
                   "unknown name 'loss'")


def test_attribute_access_in_a_formula(tmp_path):
    text = mutate(L1, "a: abs(input - target)", "a: abs(input - target.__class__)")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "      a: abs("), "variants[0].formula.a",
                   "attribute access", "target.__class__")


def test_attribute_access_in_a_second_variant(tmp_path):
    text = mutate(CE, "      y: moveaxis(target, 1, -1)", "      y: moveaxis(target.T, 1, -1)")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "y: moveaxis(target.T"), "variants[1].formula.y",
                   "target.T")


def test_import_in_a_reduction(tmp_path):
    text = mutate(L1, "      sum: sum(loss)\n", '      sum: __import__("os").system("true")\n')
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "sum: __import__"), "variants[0].reductions.sum",
                   "__import__")


def test_bad_syntax_in_a_property(tmp_path):
    text = mutate(L1, '    holds: "all(out_none >= 0)"', '    holds: "all(out_none >= 0) and True"')
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "and True"), "properties[0].holds", "'and'")


def test_subscript_in_an_input_default(tmp_path):
    text = mutate(CE, 'default: "ones(C)"', 'default: "ones(C)[0]"')
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, 'default: "ones(C)[0]"'), "inputs.weight.default",
                   "subscript")


def test_bad_token_on_the_second_line_of_a_block_formula(tmp_path):
    text = mutate(L1, "      a: abs(input - target)\n",
                  "      a: |\n"
                  "        (w *\n"
                  "         abs(input - target.real))\n")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "target.real"), "variants[0].formula.a", "target.real")


def test_formula_syntax_error(tmp_path):
    text = mutate(L1, "a: abs(input - target)", "a: abs(input - target")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "      a: abs("), "variants[0].formula.a",
                   "not a valid expression")


def test_binding_that_shadows_an_input(tmp_path):
    text = mutate(L1, "      w: weight * ones_like(input)\n", "      target: weight * ones_like(input)\n")
    path = write(tmp_path, text)
    err = load_error(path)
    assert_located(err, path, line_of(text, "      target: weight"), "variants[0].formula.target", "shadows")


# ---------------------------------------------------------------------------------------------
# (d) duplicate keys and (e) invalid YAML
# ---------------------------------------------------------------------------------------------

def test_duplicate_key_in_a_nested_mapping(tmp_path):
    text = mutate(L1, "      a: abs(input - target)\n",
                  "      a: abs(input - target)\n      a: w * (input - target) ** 2\n")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "      a: w * (input"), "variants[0].formula.a",
                   "duplicate key 'a'")


def test_duplicate_top_level_key(tmp_path):
    text = mutate(L1, "id: l1_loss\n", "id: l1_loss\nsummary: again\n")
    path = write(tmp_path, text)
    # the second occurrence (the original summary, now below the inserted one) is the duplicate
    assert_located(load_error(path), path, line_of(text, "summary: Absolute"), "summary", "duplicate key 'summary'")


def test_invalid_yaml(tmp_path):
    text = mutate(L1, "summary: Absolute difference", "summary: one: Absolute difference")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "summary: one:"), "(document)", "not valid YAML")


def test_tab_indentation_is_invalid_yaml(tmp_path):
    text = mutate(L1, "  reduction: {default: mean", "\treduction: {default: mean")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "\treduction"), "(document)", "not valid YAML")


def test_python_tags_are_not_constructed(tmp_path):
    sentinel = tmp_path / "pwned"
    text = mutate(L1, "title: L1 loss (mean absolute error)\n",
                  f"title: !!python/object/apply:os.system ['touch {sentinel}']\n")
    path = write(tmp_path, text)
    err = load_error(path)
    assert err.field == "title" and err.line == line_of(text, "title: !!python")
    assert not sentinel.exists()


# ---------------------------------------------------------------------------------------------
# (f) layouts and other cross-references, (g) reductions against the reduction parameter
# ---------------------------------------------------------------------------------------------

def test_layout_with_an_undeclared_variadic_dim(tmp_path):
    text = mutate(L1, 'target: ["*s"]}}', 'target: ["*t"]}}')
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, '"*t"'), "variants[0].layouts[0].shapes.target[0]",
                   "'*t' is not a declared variadic dim")


def test_layout_with_an_undeclared_dim(tmp_path):
    text = mutate(CE, '      - {name: batch, shapes: {input: [N, C], target: [N]}}\n',
                  '      - name: batch\n'
                  '        shapes:\n'
                  '          input: [N, C]\n'
                  '          target: [M]\n')
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "target: [M]"), "variants[0].layouts[1].shapes.target[0]",
                   "'M' is not a declared dim")


def test_layout_naming_an_unknown_input(tmp_path):
    text = mutate(L1, 'shapes: {input: ["*s"], target: ["*s"]}', 'shapes: {input: ["*s"], tagret: ["*s"]}')
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "tagret"), "variants[0].layouts[0].shapes.tagret",
                   "not an input")


def test_call_naming_an_unknown_argument(tmp_path):
    text = mutate(L1, "  keywords: [reduction, weight]\n", "  keywords: [reduction, weight, margin]\n")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "keywords: [reduction, weight, margin]"),
                   "call.keywords[2]", "'margin'")


def test_example_naming_an_unknown_input(tmp_path):
    text = mutate(L1, "    inputs: {input: [], target: []}\n", "    inputs: {input: [], target: [], wieght: []}\n")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "wieght"), "examples[1].inputs.wieght", "not an input")


def test_reduction_missing_from_a_variant(tmp_path):
    text = mutate(L1, "      mean: sum(loss) / sum(w)\n      sum: sum(loss)\n", "      mean: sum(loss) / sum(w)\n")
    path = write(tmp_path, text)
    # reported at the reductions mapping, whose first entry is the line after "reductions:"
    assert_located(load_error(path), path, line_of(text, "      none: loss"), "variants[0].reductions",
                   "['mean', 'none']", "['mean', 'none', 'sum']")


def test_reduction_the_parameter_does_not_have(tmp_path):
    text = mutate(L1, "  reduction: {default: mean, values: [none, mean, sum]}",
                  "  reduction: {default: mean, values: [none, mean]}")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "      none: loss"), "variants[0].reductions",
                   "differ from the parameter's values")


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------

def _validate(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loss_conformance", "validate", *map(str, paths)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_validate_command_on_good_and_bad_files(tmp_path):
    text = mutate(L1, "a: abs(input - target)", "a: abs(input - target.__class__)")
    bad = write(tmp_path, text)
    good = LOSSES_DIR / "l1_loss.yaml"
    result = _validate(good, bad)
    assert result.returncode == 2, result
    assert f"{bad}:{line_of(text, '      a: abs(')}:" in result.stderr
    assert "variants[0].formula.a" in result.stderr and "target.__class__" in result.stderr
    assert "Traceback" not in result.stderr
    assert f"{good}: ok (l1_loss" in result.stdout
    assert str(bad) not in result.stdout


# ---------------------------------------------------------------------------------------------
# Bugs found: these files crash the loader with a raw exception instead of a SpecError
# ---------------------------------------------------------------------------------------------

def test_unknown_tag_on_a_scalar_is_a_spec_error(tmp_path):
    text = mutate(L1, "title: L1 loss (mean absolute error)\n", "title: !!python/name:os.system ''\n")
    path = write(tmp_path, text)
    assert_located(load_error(path), path, line_of(text, "title: !!python"), "title")


def test_complex_mapping_key_is_a_spec_error(tmp_path):
    text = mutate(L1, "title: L1 loss (mean absolute error)\n",
                  "title: L1 loss (mean absolute error)\n? [a, b]\n: 1\n")
    path = write(tmp_path, text)
    assert load_error(path).line == line_of(text, "? [a, b]")


def test_non_utf8_file_is_a_spec_error(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"format: 1\ntitle: moyenne \xe9cart\n")  # latin-1 bytes, not UTF-8
    assert str(path) in str(load_error(path))


def test_validate_exits_2_on_an_unknown_tag(tmp_path):
    text = mutate(L1, "title: L1 loss (mean absolute error)\n", "title: !!python/name:os.system ''\n")
    result = _validate(write(tmp_path, text))
    assert result.returncode == 2 and "Traceback" not in result.stderr


@pytest.mark.xfail(strict=True, reason="a formula written as a multi-line plain or folded (>-) scalar is "
                                       "folded onto one line, so the error points at the key's line, not "
                                       "at the line holding the offending token")
def test_line_of_a_bad_token_in_a_folded_formula(tmp_path):
    text = mutate(L1, "      a: abs(input - target)\n",
                  "      loss: >-\n"
                  "        w *\n"
                  "        abs(input - target.real)\n")
    path = write(tmp_path, text)
    assert load_error(path).line == line_of(text, "target.real")


def test_formula_error_is_not_leaked_raw(tmp_path):
    # the loader turns every FormulaError into a SpecError (FormulaError is not a SpecError)
    assert not issubclass(FormulaError, SpecError)
    text = mutate(L1, "a: abs(input - target)", "a: x[0]")
    err = load_error(write(tmp_path, text))
    assert "x[0]" in str(err) or "'x'" in str(err)


def test_example_value_that_yaml_reads_as_a_string_is_refused(tmp_path):
    text = mutate(L1, "inputs: {input: [1.0, 2.0], target: [0.0, 0.0], weight: [1.0, 3.0]}",
                  "inputs: {input: [1.0e30, 2.0], target: [0.0, 0.0], weight: [1.0, 3.0]}")
    path = write(tmp_path, text)
    err = load_error(path)
    assert err.line == line_of(text, "[1.0e30, 2.0]") and err.field.startswith("examples[2]")
