"""Reports: every status in every report; versions; escaped control characters; strict JSON and
well-formed XML whatever a backend says."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import hypothesis
import numpy
import torch

from loss_conformance import __version__
from loss_conformance.records import FAILING, STATUSES
from loss_conformance.report import (REPORT_VERSION, build_report, environment_versions,
                                escape_control, junit_xml, render_summary, write_json, write_junit)
from loss_conformance.report.json_report import dumps_record, dumps_report, report_head, to_json
from loss_conformance.report.terminal import LABELS, SEVERITY, _verdict

from tests.report_fixtures import NASTY, RUN, TIMINGS, failing, one_of_each, read, record


# -- the JSON report ---------------------------------------------------------------------------------


def test_versions_of_the_run_are_reported():
    versions = environment_versions()
    assert versions["torch"] == str(torch.__version__)
    assert versions["hypothesis"] == hypothesis.__version__
    assert versions["numpy"] == numpy.__version__
    assert versions["loss_conformance"] == __version__
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", versions["python"])
    report = build_report([record()], TIMINGS, RUN)
    assert report["versions"] == versions
    assert report["complete"] is True and report["version"] == REPORT_VERSION == 1
    assert "interrupted" not in report


def test_summary_counts_every_status():
    report = build_report(one_of_each() + [record()], TIMINGS, RUN)
    assert list(report["summary"]) == list(STATUSES)
    assert report["summary"] == {s: 2 if s == "pass" else 1 for s in STATUSES}


def test_json_is_strict_and_keeps_control_characters_as_escapes(tmp_path):
    r = failing(message=NASTY, counterexample={"x": [float("nan"), float("inf"), -float("inf")],
                                                "y": numpy.float32("nan"), "z": numpy.arange(3), "t": torch.ones(2)})
    path = tmp_path / "r.json"
    write_json(build_report([r], TIMINGS, RUN), path)
    raw = path.read_bytes()
    assert raw.isascii() and not re.search(rb"[\x00-\x08\x0b-\x1f\x7f]", raw)
    data = read(path)
    assert data["records"][0]["message"] == NASTY  # lossless: JSON escapes, not replacements
    assert data["records"][0]["counterexample"] == {"x": ["nan", "inf", "-inf"], "y": "nan", "z": [0, 1, 2],
                                                    "t": [1.0, 1.0]}


def test_serialised_records_make_the_same_text_as_one_dump():
    records = one_of_each()
    head = report_head(records, TIMINGS, RUN, complete=False)
    assert dumps_report(head, [dumps_record(r) for r in records]) == to_json({**head, "records":
                                                                             [r.as_dict() for r in records]})
    assert dumps_report(head, []) == to_json({**head, "records": []})


def test_detail_field_is_optional_and_reported():
    assert "detail" not in record().as_dict()
    r = failing("nondeterministic", detail={"outputs": [1.0, 1.5]})
    assert build_report([r], TIMINGS, RUN)["records"][0]["detail"] == {"outputs": [1.0, 1.5]}


# -- every status, in the terminal and in JUnit ------------------------------------------------------


def test_severity_and_labels_cover_every_status():
    assert set(SEVERITY) == set(STATUSES) == set(LABELS)
    assert SEVERITY[:5] == ("error", "crashed", "timeout", "nondeterministic", "fail")
    for status in FAILING:
        assert LABELS[status].isupper()
    assert _verdict(["pass", "crashed", "fail"]) == "crashed"
    assert _verdict(["timeout", "nondeterministic"]) == "timeout"
    assert _verdict(["pass", "unsupported", "skipped"]) == "unsupported"
    assert _verdict(["pass", "skipped"]) == "pass" and _verdict(["skipped"]) == "skipped"


def test_every_status_renders_in_the_terminal():
    records = one_of_each()
    text = render_summary(records, TIMINGS, seed=7)
    for r in records:
        expected = r.check if r.status == "pass" else f"{r.check}:{LABELS[r.status]}"
        assert expected in text
    assert f"{len(STATUSES)} checks: " + ", ".join(f"1 {LABELS[s]}" for s in reversed(SEVERITY)) in text
    for status in FAILING:  # the details: message, seed, snippet
        block = text.split(f"\n{LABELS[status]}: my_kernels l1_loss check_{status} ", 1)[1].split("\n\n", 1)[0]
        assert "(seed 3550092040, 3 examples)" in block
        assert f"  {status}: output values differ" in block
        assert "  reproduce with:\n    import torch\n    input = torch.tensor(" in block


def test_every_status_maps_in_junit(tmp_path):
    path = tmp_path / "r.xml"
    write_junit(one_of_each(), path)
    suites = ET.parse(path).getroot()
    cases = {c.get("name").split("[")[0]: c for c in suites.iter("testcase")}
    expected = {"fail": "failure", "crashed": "failure", "timeout": "failure", "nondeterministic": "failure",
                "error": "error", "skipped": "skipped", "not_implemented": "skipped", "unsupported": "skipped",
                "known_deviation": "system-out", "pass": None}
    assert set(expected) == set(STATUSES)
    for status, tag in expected.items():
        children = [child.tag for child in cases[f"check_{status}"]]
        assert children == ([tag] if tag else [])
        if tag in ("failure", "error", "skipped"):
            assert cases[f"check_{status}"][0].get("type") == status
    failure = cases["check_timeout"].find("failure")
    assert "seed: 3550092040" in failure.text and "reproduce with:\nimport torch" in failure.text
    assert failure.get("message").startswith("timeout: ")
    suite = suites.find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors"), suite.get("skipped")) == \
        (str(len(STATUSES)), "4", "1", "3")
    assert (suites.get("failures"), suites.get("errors"), suites.get("skipped")) == ("4", "1", "3")


def test_nondeterministic_outputs_are_shown():
    r = failing("nondeterministic", detail={"outputs": [[1.0, 2.0], [1.0, 2.5]]})
    text = render_summary([r], TIMINGS)
    assert "  first call:  [1.0, 2.0]\n  second call: [1.0, 2.5]" in text
    failure = ET.fromstring(junit_xml([r])).find(".//failure")
    assert "first call:  [1.0, 2.0]\nsecond call: [1.0, 2.5]" in failure.text
    r2 = failing("nondeterministic", reproduce=None, counterexample={"first": 0.5, "second": 0.75, "inputs": {}})
    text = render_summary([r2], TIMINGS)
    assert "first call:  0.5" in text and "second call: 0.75" in text and "counterexample:" in text


def test_a_crash_without_a_snippet_shows_its_counterexample():
    r = failing("crashed", reproduce=None, message="worker died with SIGSEGV")
    text = render_summary([r], TIMINGS)
    assert "CRASHED: my_kernels" in text and "worker died with SIGSEGV" in text
    assert "counterexample: {'variant': 'default'" in text and "seed 3550092040" in text


# -- control characters ------------------------------------------------------------------------------


UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]")


def test_escape_control():
    assert escape_control("a\x1b[31mb\r\x00\x85\u202ec\td\ne") == "a\\x1b[31mb\\r\\x00\\x85\\u202ec\td\ne"
    every = "".join(map(chr, range(0x00, 0xA0))) + "\ud800\udfff\ufffe\uffff"
    assert not UNSAFE.search(escape_control(every))
    assert escape_control("ordinary text: ü, 中文, ∑, emoji 😀") == "ordinary text: ü, 中文, ∑, emoji 😀"


def test_terminal_output_escapes_control_characters():
    r = failing("crashed", message=NASTY + "\nsecond line", backend="evil\x1b[0m", check="forward\r")
    text = render_summary([r, failing("nondeterministic", detail={"outputs": ["\x1b[2J", "ok"]})], TIMINGS)
    assert not UNSAFE.search(text)
    text.encode("utf-8")  # no lone surrogate left to break printing
    assert "boom\\x1b[2J\\x1b[31mred\\r\\x00\\x07" in text and "tab\there" in text
    assert "\n  second line" in text  # \n still separates lines; \r, \x0b, \x85, \u2028 do not
    assert "evil\\x1b[0m" in text and "forward\\r" in text
    assert "first call:  '\\x1b[2J'" in text


def test_junit_is_well_formed_xml_whatever_the_messages_hold(tmp_path):
    every = "".join(map(chr, range(0x00, 0xA0))) + "\ud800\udfff\ufffe\uffff"
    records = [failing("fail", message=NASTY, backend="b\x00ad", loss="l\x1b"),
               failing("error", message=every, reproduce="print('\x0b')"),
               record("skipped", message="skip\x00reason"), record("known_deviation", message="dev\x1b"),
               failing("nondeterministic", detail={"outputs": ["\x00", "\x01"]})]
    path = tmp_path / "r.xml"
    write_junit(records, path)
    root = ET.parse(path).getroot()  # parses: well-formed XML 1.0
    texts = list(root.itertext())
    attributes = [v for element in root.iter() for v in element.attrib.values()]
    for value in texts + attributes:
        assert not UNSAFE.search(value)
    failure = root.find(".//failure")
    assert failure.text.startswith("boom\\x1b[2J\\x1b[31mred\\r\\x00\\x07")  # escaped, not dropped
    assert failure.get("message").startswith("boom\\x1b[2J")
    error = root.find(".//error")
    assert "\\x00\\x01\\x02" in error.text and "\\x1f \n" not in error.text and "\\x9f" in error.text
    assert "print('\\x0b')" in error.text
    assert root.find(".//skipped").get("message") == "skip\\x00reason"
    names = {s.get("name") for s in root.iter("testsuite")}
    assert "b\\x00ad.l\\x1b" in names


def test_a_loss_the_backend_lacks_is_one_row():
    from loss_conformance.report.terminal import render_summary
    from tests.report_fixtures import record
    lacking = [record("not_implemented", loss="ctc_loss", reduction=r, dtype=d)
               for r in ("none", "mean", "sum") for d in ("float32", "float64")]
    partly = [record("pass", reduction="mean"), record("not_implemented", reduction="sum")]
    lines = render_summary(lacking + partly, {}).splitlines()
    ctc = [line for line in lines if "ctc_loss" in line]
    assert len(ctc) == 1 and "not implemented" in ctc[0] and "(6 checks)" in ctc[0]
    # A loss only partly lacking keeps its rows: what is missing there is worth seeing row by row.
    assert len([line for line in lines if "l1_loss" in line]) == 2


def test_failures_of_one_cause_are_one_block_with_the_smallest_counterexample():
    from loss_conformance.report.terminal import render_summary
    from tests.report_fixtures import failing

    def with_shape(shape, **extra):
        counterexample = {"variant": "default", "layout": "batched", "params": {},
                          "inputs": {"input": {"shape": shape, "dtype": "float32", "values": []}}}
        return failing(counterexample=counterexample, message="output values differ: got nan", **extra)

    same = [with_shape([4, 3], reduction="sum"), with_shape([1], reduction="mean", dtype="float64"),
            with_shape([2, 2], reduction="none")]
    other = failing(check="backward", message="gradient of input values differ: got 1")
    text = render_summary(same + [other], {})
    blocks = [line for line in text.splitlines() if line.startswith("FAIL: ")]
    assert len(blocks) == 2  # one per cause, not one per record
    assert "forward reduction=mean dtype=float64" in blocks[0]  # the smallest counterexample, shape [1]
    assert "and 2 more record(s) of the same cause (sum/float32/cpu, none/float32/cpu)" in text
