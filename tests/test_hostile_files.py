"""Hostile or careless spec and known-deviations files (tests/hostile/, one limit per file): each
ends ``loss-conformance validate`` (and, for a deviations file, ``run --known-deviations``) with
exit status 2 and a message naming the file, the line and the field; never a hang, a huge
allocation or a traceback. Each probe runs the CLI in a forked process (no second torch import)
under a timeout and a memory cap."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from loss_conformance_reference.limits import MAX_FILE_BYTES
from loss_conformance_spec import LOSSES_DIR
from tests.test_cli import cli

CORPUS = Path(__file__).resolve().parent / "hostile"
TIMEOUT_S = 60
# Bytes of address space a probe may add to what its process held when forked: an alias bomb or a
# giant int would pass it in seconds.
MEMORY_CAP = 3 << 30

# Each probe and a phrase of the message it must be refused with, so that every file keeps testing
# the limit it is named after (and not, say, a schema error that a later edit happens to cause).
SPEC_PROBES = {
    "yaml_alias_bomb.yaml": "once aliases are expanded",
    "yaml_recursive_alias.yaml": "levels deep once aliases are expanded",
    "yaml_deep_nesting.yaml": "levels deep",
    "yaml_int_5000_digits.yaml": "integer literal of 5000 characters",
    "yaml_int_65_bits.yaml": "integer literal of 66 bits",
    "yaml_python_object_tag.yaml": "python/object",
    "yaml_timestamp_tag.yaml": "timestamp",
    "formula_deep_parentheses.yaml": "too many nested parentheses",
    "formula_deep_unary.yaml": "levels deep",
    "formula_5000_terms.yaml": "characters; at most",
    "formula_too_many_nodes.yaml": "syntax nodes",
    "formula_int_5000_digits.yaml": "4300 digits",
    "formula_int_65_bits.yaml": "integer literal of 66 bits",
    "formula_power_tower.yaml": "more than 1024 bits",
    "formula_string_repeat.yaml": "longer than 1024",
    "formula_string_format.yaml": "string formatting",
    "formula_float_overflow.yaml": "cannot be computed",
    "dims_giant_max.yaml": "maximum of 4096",
    "dims_giant_rank.yaml": "maximum of 8",
    "dims_giant_input.yaml": "elements at the dims' maxima",
    "dims_giant_literal_size.yaml": "above the limit of 4096",
    "tolerance_atol_inf.yaml": "maximum of 0.1",
    "tolerance_negative.yaml": "minimum of 0",
    "tolerance_nan.yaml": "not nan",
    "tolerance_rtol_2.yaml": "maximum of 0.1",
    "examples_too_many.yaml": "more than 256 items",
    "examples_too_big.yaml": "at most 10000",
    "file_empty.yaml": "not of type 'object'",
    "file_binary_garbage.yaml": "not UTF-8",
    "file_control_character.yaml": "special characters",
}
DEVIATION_PROBES = {
    "deviations_when_raises.yaml": "failed on an example: TypeError",
    "deviations_when_not_a_truth_value.yaml": "not a truth value",
    "deviations_when_runtime_repeat.yaml": "longer than 1024",
    "deviations_when_power_tower.yaml": "more than 1024 bits",
}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return cli(*args, timeout=TIMEOUT_S, memory_cap=MEMORY_CAP)


def _assert_refused(result: subprocess.CompletedProcess[str], path: Path, phrase: str | None) -> None:
    err = result.stderr
    assert result.returncode == 2, f"exit {result.returncode}\n{err[-2000:]}"
    assert "Traceback" not in err, err[-2000:]
    assert re.search(re.escape(str(path)) + r":\d+: field '[^']+'", err), err[-2000:]
    if phrase:
        assert phrase in err, err[-2000:]


def test_the_corpus_is_listed_here():
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted({**SPEC_PROBES, **DEVIATION_PROBES})


@pytest.mark.parametrize("name", sorted(SPEC_PROBES))
def test_validate_refuses_a_hostile_spec(name):
    path = CORPUS / name
    result = _cli("validate", str(path))
    _assert_refused(result, path, SPEC_PROBES[name])


def test_validate_refuses_a_file_past_the_size_limit(tmp_path):
    # generated here rather than committed: a shipped spec padded with comments past 1 MiB
    path = tmp_path / "too_big.yaml"
    text = (LOSSES_DIR / "l1_loss.yaml").read_text(encoding="utf-8")
    padding = "# " + "x" * 77 + "\n"
    path.write_text(text + padding * (MAX_FILE_BYTES // len(padding) + 1), encoding="utf-8")
    result = _cli("validate", str(path))
    _assert_refused(result, path, f"larger than {MAX_FILE_BYTES} bytes")


@pytest.mark.parametrize("name", sorted(DEVIATION_PROBES))
def test_validate_refuses_a_deviations_file(name):
    path = CORPUS / name
    result = _cli("validate", str(path))
    _assert_refused(result, path, None)  # not a spec: refused by the schema on its first line


@pytest.mark.parametrize("name", sorted(DEVIATION_PROBES))
def test_run_refuses_a_hostile_deviations_file(name):
    path = CORPUS / name
    result = _cli("run", "--loss", "l1_loss", "--max-examples", "3", "--no-torch-baseline",
                     "--known-deviations", str(path))
    _assert_refused(result, path, DEVIATION_PROBES[name])
    assert "deviations[0].when" in result.stderr
