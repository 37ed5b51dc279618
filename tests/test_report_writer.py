"""The report writer: incremental and atomic JSON, JUnit at the end, output paths checked before
the run."""
from __future__ import annotations

import json
import os
import signal
import stat
import threading
import xml.etree.ElementTree as ET

import pytest

from loss_conformance.records import STATUSES
from loss_conformance.report import (ReportPathError, ReportWriter, build_report, environment_versions,
                                write_junit)
from loss_conformance.report import atomic as atomic_module
from loss_conformance.report.json_report import to_json

from tests.report_fixtures import RUN, TIMINGS, failing, one_of_each, read, record


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


def test_two_thousand_adds_are_all_in_the_final_report(tmp_path):
    # The cost of the rewrites is measured by the throttle test above, not timed here.
    path = tmp_path / "r.json"
    writer = ReportWriter(path, tmp_path / "r.xml", RUN)
    records = [failing(check=f"c{i}") if i % 10 == 0 else record(check=f"c{i}", seed=i, examples=100)
               for i in range(2000)]
    for r in records:
        writer.add(r)
    writer.finish(TIMINGS)
    assert [r["check"] for r in read(path)["records"]] == [f"c{i}" for i in range(2000)]


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




def test_records_added_out_of_order_are_kept_in_the_order_given(tmp_path):
    # run --jobs finishes checks out of plan order; the report lists them in plan order all the same.
    path = tmp_path / "r.json"
    records = one_of_each()
    rank = {id(r): i for i, r in enumerate(records)}
    writer = ReportWriter(path, None, RUN, min_interval_s=0, order=lambda r: rank[id(r)])
    shuffled = records[1::2] + records[::2]
    for r in shuffled[:3]:
        writer.add(r)
    assert [x["check"] for x in read(path)["records"]] == [r.check for r in sorted(shuffled[:3], key=records.index)]
    for r in shuffled[3:]:
        writer.add(r)
    writer.finish(TIMINGS)
    assert writer.records == records and read(path) == read_as_built(records)
