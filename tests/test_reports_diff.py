"""``loss-conformance diff``: every kind of status change, exit 1 exactly on a new failure, bad inputs exit 2."""
from __future__ import annotations

import itertools
import json

import pytest

from loss_conformance.cli import main
from loss_conformance.records import FAILING, STATUSES
from loss_conformance.report import build_report, write_json
from loss_conformance.report.diff import KINDS, TITLES, classify

from tests.report_fixtures import RUN, TIMINGS, failing, record


def write(path, records, run=RUN, **extra):
    report = build_report(records, TIMINGS, run)
    report.update(extra)
    write_json(report, path)
    return str(path)


def rec(check, status, **extra):
    return (failing if status in FAILING else record)(status, check=check, **extra)


# One record per kind of change, and the (old, new) statuses that make it, as the brief defines them.
TRANSITIONS = {
    "new_failure": ("pass", "fail"),
    "still_failing": ("fail", "crashed"),
    "no_longer_failing": ("fail", "pass"),
    "changed": ("known_deviation", "pass"),
    "added": (None, "pass"),
    "removed": ("pass", None),
}


def pair(tmp_path, transitions, unchanged=("pass",)):
    """Reports A and B holding one record (check named after it) per transition, and unchanged ones."""
    a = [rec(name, old) for name, (old, _) in transitions.items() if old] + \
        [rec(f"same_{s}", s) for s in unchanged]
    b = [rec(name, new, message=f"B says {name}") for name, (_, new) in transitions.items() if new] + \
        [rec(f"same_{s}", s) for s in unchanged]
    return write(tmp_path / "a.json", a), write(tmp_path / "b.json", b)


def run_diff(capsys, *args):
    status = main(["diff", *map(str, args)])
    out, err = capsys.readouterr()
    return status, out, err


def test_classify_matches_the_exit_rule_on_every_pair_of_statuses():
    for old, new in itertools.product((None,) + STATUSES, repeat=2):
        kind = classify(old, new)
        assert (kind is None) == (old == new)
        # New failure: failing in B, and not failing (or absent) in A.
        assert (kind == "new_failure") == (new in FAILING and old not in FAILING)
        if new is None and old is not None:
            assert kind == "removed"
    for kind, (old, new) in TRANSITIONS.items():
        assert classify(old, new) == kind


def test_every_kind_of_change_is_listed_and_a_new_failure_exits_1(tmp_path, capsys):
    a, b = pair(tmp_path, TRANSITIONS, unchanged=("pass", "fail", "skipped"))
    out_json = tmp_path / "changes.json"
    status, out, err = run_diff(capsys, a, b, "--json", out_json)
    assert status == 1 and err == ""
    changes = json.loads(out_json.read_text())
    assert changes["format"] == "loss-conformance-diff" and changes["unchanged"] == 3
    by_check = {c["check"]: c for c in changes["changes"]}
    assert set(by_check) == set(TRANSITIONS)
    for name, (old, new) in TRANSITIONS.items():
        assert (by_check[name]["change"], by_check[name]["old"], by_check[name]["new"]) == (name, old, new)
        assert by_check[name]["loss"] == "l1_loss" and by_check[name]["backend"] == "my_kernels"
    assert by_check["new_failure"]["message"] == "B says new_failure"
    assert changes["new_failures"] == 1 and changes["counts"] == {k: 1 for k in KINDS}
    # The table: a section per kind, the statuses, B's message under the new failure.
    for kind in KINDS:
        assert f"{TITLES[kind]} (1):" in out
    assert "pass -> fail" in out and "known_deviation -> pass" in out and "- -> pass" in out
    assert "B says new_failure" in out and "B says still_failing" not in out
    assert out.index("new failures") < out.index("no longer failing") < out.index("removed (only in A)")
    assert out.rstrip().endswith("(exit status 1)")


@pytest.mark.parametrize("transitions, expected", [
    ({k: v for k, v in TRANSITIONS.items() if k != "new_failure"}, 0),
    ({"added_failing": (None, "timeout")}, 1),  # a failing record that A did not have is new
    ({"dropped_failing": ("error", None)}, 0),
    ({"deviation": ("pass", "known_deviation"), "unsupported": ("pass", "unsupported")}, 0),
    ({"was_skipped": ("skipped", "nondeterministic")}, 1),
])
def test_exit_status_is_1_exactly_on_a_new_failure(tmp_path, capsys, transitions, expected):
    status, out, _ = run_diff(capsys, *pair(tmp_path, transitions))
    assert status == expected, out


def test_identical_runs_have_no_changes(tmp_path, capsys):
    a = write(tmp_path / "a.json", [rec("forward", "pass"), rec("backward", "fail")])
    status, out, _ = run_diff(capsys, a, a)
    assert status == 0 and "0 changes, 2 unchanged" in out and "differs" not in out


def test_a_record_is_keyed_by_every_key_field(tmp_path, capsys):
    a = write(tmp_path / "a.json", [rec("forward", "pass", dtype="float32")])
    b = write(tmp_path / "b.json", [rec("forward", "pass", dtype="float64")])
    _, out, _ = run_diff(capsys, a, b)
    assert "added (only in B) (1)" in out and "removed (only in A) (1)" in out


def test_differing_versions_and_options_are_shown_as_context(tmp_path, capsys):
    a = write(tmp_path / "a.json", [rec("forward", "pass")], run={**RUN, "profile": "ci"})
    b_report = build_report([rec("forward", "pass")], TIMINGS, {**RUN, "seed": 8, "profile": "thorough"})
    b_report["versions"] = {**b_report["versions"], "torch": "9.9.9"}
    write_json(b_report, tmp_path / "b.json")
    status, out, _ = run_diff(capsys, a, tmp_path / "b.json", "--json", tmp_path / "c.json")
    assert status == 0
    assert "seed differs: 7 (A) -> 8 (B)" in out and "profile differs: ci (A) -> thorough (B)" in out
    assert "torch differs:" in out and "-> 9.9.9 (B)" in out
    context = {c["field"]: (c["a"], c["b"]) for c in json.loads((tmp_path / "c.json").read_text())["context"]}
    assert context["seed"] == (7, 8) and context["torch"][1] == "9.9.9"


def test_an_incomplete_report_is_accepted_with_a_warning(tmp_path, capsys):
    a = write(tmp_path / "a.json", [rec("forward", "pass"), rec("backward", "pass")])
    b = write(tmp_path / "b.json", [rec("forward", "pass")], complete=False, interrupted="SIGTERM")
    status, out, err = run_diff(capsys, a, b)
    assert status == 0 and "removed (only in A) (1)" in out
    assert "warning" in err and "b.json" in err and "incomplete" in err and "SIGTERM" in err


def _bad_inputs(tmp_path):
    good = [rec("forward", "pass")]
    report = build_report(good, TIMINGS, RUN)
    yield "missing.json", "no such file"
    (tmp_path / "text.json").write_text("this is not json\n")
    yield "text.json", "not JSON"
    (tmp_path / "list.json").write_text("[1, 2]")
    yield "list.json", "not a loss-conformance report"
    (tmp_path / "junit.json").write_text(json.dumps({**report, "format": "junit"}))
    yield "junit.json", "not a loss-conformance report"
    (tmp_path / "v2.json").write_text(json.dumps({**report, "version": 2}))
    yield "v2.json", "version 2 is unknown"
    (tmp_path / "norecords.json").write_text(json.dumps({k: v for k, v in report.items() if k != "records"}))
    yield "norecords.json", "records"
    (tmp_path / "nostatus.json").write_text(json.dumps({**report, "records": [{"loss": "l1_loss"}]}))
    yield "nostatus.json", "record 0 has no backend, check, reduction, dtype, device, status"
    (tmp_path / "twice.json").write_text(json.dumps({**report, "records": report["records"] * 2}))
    yield "twice.json", "records 0 and 1 are both my_kernels l1_loss forward"
    (tmp_path / "adir.json").mkdir()
    yield "adir.json", "is a directory"


def test_bad_input_files_exit_2_naming_the_file(tmp_path, capsys):
    good = write(tmp_path / "good.json", [rec("forward", "pass")])
    for name, needle in list(_bad_inputs(tmp_path)):
        bad = str(tmp_path / name)
        for args in ((good, bad), (bad, good)):
            status, out, err = run_diff(capsys, *args)
            assert status == 2, (name, err)
            assert out == "", name  # nothing half-printed
            assert err.count("\n") == 1 and bad in err and needle in err, err


def test_an_unwritable_json_output_exits_2_before_printing(tmp_path, capsys):
    good = write(tmp_path / "good.json", [rec("forward", "pass")])
    status, out, err = run_diff(capsys, good, good, "--json", tmp_path / "no" / "such" / "dir.json")
    assert status == 2 and out == "" and "does not exist" in err


def test_help_names_the_exit_statuses(capsys):
    with pytest.raises(SystemExit):
        main(["diff", "--help"])
    text = capsys.readouterr().out
    assert "A.json" in text and "--json" in text and "new failure" in text and "Exit status" in text
