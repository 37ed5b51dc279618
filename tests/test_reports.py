"""Reports: atomic, incremental JSON; path checks before the run; every status in every report;
escaped control characters; strict JSON and well-formed XML whatever a backend says."""
from __future__ import annotations

import json
import os
import re
import signal
import stat
import threading
import time
import xml.etree.ElementTree as ET

import hypothesis
import numpy
import pytest
import torch

from conformance import __version__
from conformance.records import FAILING, STATUSES, Record
from conformance.report import (REPORT_VERSION, ReportPathError, ReportWriter, build_report, environment_versions,
                                escape_control, junit_xml, render_summary, write_json, write_junit)
from conformance.report import atomic as atomic_module
from conformance.report.json_report import dumps_record, dumps_report, report_head, to_json
from conformance.report.terminal import LABELS, SEVERITY, _verdict

TIMINGS = {"total_s": 2.0, "backend_s": 0.5, "reference_s": 0.5, "harness_s": 1.0}
RUN = {"backend": "tests.sample_backends:x", "seed": 7}
# Everything a terminal or an XML parser should never receive raw, as a backend could raise it.
NASTY = ("boom\x1b[2J\x1b[31mred\r\x00\x07\x08\x0b\x0c\x1b]0;title\x07\x7f\x85\x9b\u2028\u202e\ud800\ufffe\uffff"
         "tab\there")


def record(status: str = "pass", **extra) -> Record:
    fields = {"loss": "l1_loss", "check": "forward", "reduction": "mean", "dtype": "float32", "device": "cpu",
              "backend": "my_kernels", "status": status}
    fields.update(extra)
    return Record(**fields)


def failing(status: str = "fail", **extra) -> Record:
    values = [[0.5, -1.25, float("nan")], [float("inf"), 2.0, -0.0]]
    base = dict(examples=3, seconds=0.25, seed=3550092040,
                message=f"{status}: output values differ; actual=2 expected=1",
                counterexample={"variant": "default", "layout": "batched",
                                "inputs": {"input": {"shape": [2, 3], "dtype": "float32", "values": values}},
                                "params": {"reduction": "mean"}},
                reproduce=f"import torch\ninput = torch.tensor({values!r})\nprint('actual:', 2)\n")
    base.update(extra)
    return record(status, **base)


def one_of_each() -> list[Record]:
    out = []
    for status in STATUSES:
        if status in FAILING:
            out.append(failing(status, check=f"check_{status}"))
        else:
            out.append(record(status, check=f"check_{status}", message="" if status == "pass" else f"why {status}"))
    return out


def read(path) -> dict:
    def no_constants(name):
        raise ValueError(f"non-strict JSON constant {name}")
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constants)


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


# -- the writer: incremental, atomic -----------------------------------------------------------------


def test_every_add_rewrites_a_parseable_incomplete_report(tmp_path):
    path = tmp_path / "r.json"
    writer = ReportWriter(path, None, RUN, min_interval_s=0)
    writer.check_paths()
    assert not path.exists()
    records = one_of_each()
    for i, r in enumerate(records, 1):
        writer.add(r)
        data = read(path)
        assert data["complete"] is False and "interrupted" not in data
        assert [x["check"] for x in data["records"]] == [x.check for x in records[:i]]
        assert sum(data["summary"].values()) == i
        assert data["run"] == RUN and data["versions"] == environment_versions()
        assert "total_s" in data["timings"]
    writer.finish(TIMINGS)
    data = read(path)
    assert data["complete"] is True and "interrupted" not in data
    assert data["timings"] == TIMINGS and len(data["records"]) == len(records)
    assert data == read_as_built(records)


def read_as_built(records):
    return json.loads(to_json(build_report(records, TIMINGS, RUN)))


def test_partial_timings_come_from_the_callable(tmp_path):
    path = tmp_path / "r.json"
    writer = ReportWriter(path, None, RUN, timings=lambda: {"total_s": 9.0, "backend_s": 1.0}, min_interval_s=0)
    writer.add(record())
    assert read(path)["timings"] == {"total_s": 9.0, "backend_s": 1.0}


def test_finish_writes_complete_json_and_junit(tmp_path):
    json_path, junit_path = tmp_path / "r.json", tmp_path / "r.xml"
    writer = ReportWriter(json_path, junit_path, RUN)
    writer.check_paths()
    for r in one_of_each():
        writer.add(r)
    assert not junit_path.exists()  # JUnit is written once, at the end
    writer.finish(TIMINGS)
    assert read(json_path)["complete"] is True
    suites = ET.parse(junit_path).getroot()
    assert int(suites.get("tests")) == len(STATUSES)
    assert sorted(os.listdir(tmp_path)) == ["r.json", "r.xml"]


@pytest.mark.parametrize("given, expected", [(signal.SIGINT, "SIGINT"), (signal.SIGTERM.value, "SIGTERM"),
                                             ("SIGTERM", "SIGTERM"), (None, None)])
def test_interrupted_run_writes_an_incomplete_report_naming_the_signal(tmp_path, given, expected):
    json_path, junit_path = tmp_path / "r.json", tmp_path / "r.xml"
    writer = ReportWriter(json_path, junit_path, RUN, min_interval_s=3600)
    writer.add(record(check="first"))
    writer.add(record(check="second"))  # throttled: not yet on disk ...
    assert [r["check"] for r in read(json_path)["records"]] == ["first"]
    writer.finish(TIMINGS, complete=False, interrupted=given)
    data = read(json_path)  # ... but in the report an interrupt leaves
    assert data["complete"] is False and data["interrupted"] == expected
    assert [r["check"] for r in data["records"]] == ["first", "second"]
    assert int(ET.parse(junit_path).getroot().get("tests")) == 2


def test_rewrites_are_throttled_and_flush_writes(tmp_path):
    now = [0.0]
    path = tmp_path / "r.json"
    writer = ReportWriter(path, None, RUN, min_interval_s=0.5, clock=lambda: now[0])
    writer.add(record(check="a"))  # the first record is written at once
    assert len(read(path)["records"]) == 1
    now[0] = 0.2
    writer.add(record(check="b"))
    assert len(read(path)["records"]) == 1
    writer.flush()
    assert len(read(path)["records"]) == 2
    now[0] = 0.4
    writer.add(record(check="c"))
    assert len(read(path)["records"]) == 2
    now[0] = 0.8
    writer.add(record(check="d"))
    assert [r["check"] for r in read(path)["records"]] == ["a", "b", "c", "d"]


def test_temp_file_is_complete_fsynced_and_beside_the_report(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync")
        real_fsync(fd)

    def replace(src, dst):
        events.append("replace")
        assert os.path.dirname(os.path.abspath(src)) == os.path.dirname(os.path.abspath(dst)) == str(tmp_path)
        # Complete before it is put in place.
        if os.path.abspath(dst) == str(path):
            assert json.loads(open(src, encoding="utf-8").read())["records"]
        else:
            assert os.path.abspath(dst) == str(tmp_path / "r.xml") and ET.parse(src).getroot().tag == "testsuites"
        real_replace(src, dst)

    monkeypatch.setattr(atomic_module.os, "fsync", fsync)
    monkeypatch.setattr(atomic_module.os, "replace", replace)
    writer = ReportWriter(path, tmp_path / "r.xml", RUN, min_interval_s=0)
    writer.add(record())
    writer.finish(TIMINGS)
    assert events.count("replace") == 3  # partial JSON, final JSON, JUnit; each after its fsync
    assert all(events[i - 1] == "fsync" for i, e in enumerate(events) if e == "replace")
    assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044 & ~current_umask()  # not mkstemp's 0600


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_failed_write_leaves_the_old_report_intact_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    writer = ReportWriter(path, None, RUN, min_interval_s=0)
    writer.add(record(check="kept"))
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic_module.os, "replace", broken_replace)
    writer.add(record(check="lost"))  # a partial write failing does not stop the run ...
    assert isinstance(writer.write_error, OSError)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["r.json"]
    with pytest.raises(OSError):  # ... the final one says so
        writer.finish(TIMINGS)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["r.json"]
    monkeypatch.undo()
    writer.finish(TIMINGS)
    assert [r["check"] for r in read(path)["records"]] == ["kept", "lost"] and writer.write_error is None


def test_a_failure_while_writing_the_temp_file_leaves_nothing_behind(tmp_path, monkeypatch):
    path = tmp_path / "r.xml"
    write_junit([record()], path)
    before = path.read_bytes()

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic_module.os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_junit([record(), failing()], path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["r.xml"]


def test_a_reader_never_sees_a_truncated_report(tmp_path):
    path = tmp_path / "r.json"
    writer = ReportWriter(path, None, RUN, min_interval_s=0)
    writer.add(failing())
    stop, seen, bad = threading.Event(), [], []

    def reader():
        while not stop.is_set():
            try:
                seen.append(len(json.loads(path.read_text(encoding="utf-8"))["records"]))
            except ValueError as exc:
                bad.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(150):
            writer.add(failing())
    finally:
        stop.set()
        thread.join()
    assert not bad and seen and seen == sorted(seen)


def test_finish_from_a_signal_handler_during_a_write_is_not_overwritten(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    writer = ReportWriter(path, tmp_path / "r.xml", RUN, min_interval_s=0)
    writer.add(record(check="a"))
    real_fsync, fired = os.fsync, []

    def fsync_then_signal(fd):  # the signal lands after the temp file is written, before the replace
        real_fsync(fd)
        if not fired:
            fired.append(True)
            writer.finish(TIMINGS, complete=False, interrupted=signal.SIGTERM)

    monkeypatch.setattr(atomic_module.os, "fsync", fsync_then_signal)
    writer.add(record(check="b"))
    data = read(path)
    assert data["complete"] is False and data["interrupted"] == "SIGTERM"
    assert [r["check"] for r in data["records"]] == ["a", "b"]
    assert sorted(os.listdir(tmp_path)) == ["r.json", "r.xml"]


def test_a_record_added_after_finish_is_reported_as_finish_left_it(tmp_path):
    path = tmp_path / "r.json"
    writer = ReportWriter(path, tmp_path / "r.xml", RUN)
    writer.add(record(check="a"))
    writer.finish(TIMINGS, complete=False, interrupted="SIGINT")
    writer.add(record(check="b"))
    data = read(path)
    assert (data["complete"], data["interrupted"]) == (False, "SIGINT")
    assert [r["check"] for r in data["records"]] == ["a", "b"]
    assert int(ET.parse(tmp_path / "r.xml").getroot().get("tests")) == 2


def test_writes_go_through_a_symlink_and_keep_it(tmp_path):
    (tmp_path / "reports").mkdir()
    link = tmp_path / "latest.json"
    link.symlink_to(tmp_path / "reports" / "run.json")
    writer = ReportWriter(link, None, RUN)
    writer.check_paths()
    writer.add(record())
    writer.finish(TIMINGS)
    assert link.is_symlink() and read(tmp_path / "reports" / "run.json")["complete"] is True


def test_a_fifo_is_written_in_place(tmp_path):
    fifo = tmp_path / "pipe.xml"
    os.mkfifo(fifo)
    got = []
    thread = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    thread.start()
    writer = ReportWriter(None, fifo, RUN)
    writer.check_paths()
    writer.add(record())
    writer.finish(TIMINGS)
    thread.join(timeout=30)
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert ET.fromstring(got[0]).tag == "testsuites"


def test_two_thousand_adds_stay_cheap(tmp_path):
    path = tmp_path / "r.json"
    writer = ReportWriter(path, tmp_path / "r.xml", RUN)
    records = [failing(check=f"c{i}") if i % 10 == 0 else record(check=f"c{i}", seed=i, examples=100)
               for i in range(2000)]
    start = time.perf_counter()
    for r in records:
        writer.add(r)
    writer.finish(TIMINGS)
    assert time.perf_counter() - start < 10  # about 0.15 s on a laptop; without the throttle, about 4 s
    assert len(read(path)["records"]) == 2000


# -- checking the paths before the run ---------------------------------------------------------------


def check(tmp_path, json_path=None, junit_path=None) -> str:
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ReportPathError) as info:
        ReportWriter(json_path, junit_path, RUN).check_paths()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no stray file
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_missing_directory_is_refused(tmp_path):
    message = check(tmp_path, json_path=tmp_path / "nowhere" / "r.json")
    assert "JSON report" in message and "does not exist" in message and "nowhere" in message


def test_path_that_is_a_directory_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    message = check(tmp_path, junit_path=tmp_path / "out")
    assert "JUnit report" in message and "is a directory" in message


def test_unwritable_location_is_refused(tmp_path):
    # Tests run as root, who may write anywhere a directory exists: a path under a regular file cannot be.
    (tmp_path / "some_file").write_text("x")
    message = check(tmp_path, json_path=tmp_path / "some_file" / "report.json")
    assert "some_file" in message and "not a directory" in message
    message = check(tmp_path, json_path=tmp_path / "some_file" / "deeper" / "report.json")
    assert "some_file" in message and "not a directory" in message
    assert (tmp_path / "some_file").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_directory_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        assert "cannot create files" in check(tmp_path, json_path=locked / "r.json")
    finally:
        locked.chmod(0o700)


def test_same_file_for_both_reports_is_refused(tmp_path):
    assert "same file" in check(tmp_path, json_path=tmp_path / "r", junit_path=tmp_path / "r")


def test_empty_path_is_refused(tmp_path):
    assert "empty" in check(tmp_path, json_path="")


def test_path_check_leaves_an_existing_report_alone_and_nothing_else(tmp_path):
    (tmp_path / "old.json").write_text("previous run")
    writer = ReportWriter(tmp_path / "old.json", tmp_path / "new.xml", RUN)
    writer.check_paths()
    assert sorted(os.listdir(tmp_path)) == ["old.json"] and (tmp_path / "old.json").read_text() == "previous run"


def test_no_paths_no_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    writer = ReportWriter(None, None, RUN)
    writer.check_paths()
    writer.add(record())
    writer.finish(TIMINGS)
    assert os.listdir(tmp_path) == [] and len(writer.records) == 1


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
