"""The reports of a run as it goes: the JSON report rewritten as records finish, JUnit at the end.

Usage by the CLI::

    writer = ReportWriter(args.json, args.junit, run_info, timings=timings.as_dict)
    writer.check_paths()              # before any check runs: ReportPathError is a usage error
    for record in records_as_they_finish:
        writer.add(record)            # the JSON on disk: "complete": false, the records so far
    writer.finish(timings.as_dict())  # "complete": true, and the JUnit file
    # from a signal handler instead: writer.finish(timings.as_dict(), complete=False, interrupted="SIGINT")

Every write is atomic (:func:`loss_conformance.report.atomic.atomic_write`): a reader, or a run killed
at any moment, finds the previous report or the next one, never a truncated file. Each record is
serialised once, when added; a rewrite joins the stored texts. Rewrites are throttled to one per
``min_interval_s`` (the first record is written at once, ``flush`` and ``finish`` always write), so a
run of thousands of quick checks does not spend its time rewriting its report; what a throttled
rewrite would have held is written by the next one, by ``flush``, or by ``finish`` on an interrupt.
"""
from __future__ import annotations

import bisect
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable

from loss_conformance.records import Record
from loss_conformance.report.atomic import ReportPathError, atomic_write, check_writable, destination, sync_directory
from loss_conformance.report.json_report import dumps_record, dumps_report, environment_versions, report_head
from loss_conformance.report.junit import write_junit

__all__ = ["ReportPathError", "ReportWriter"]


def _signal_name(interrupted: str | int | signal.Signals | None) -> str | None:
    if interrupted is None or isinstance(interrupted, str):
        return interrupted
    try:
        return signal.Signals(interrupted).name
    except ValueError:
        return f"signal {int(interrupted)}"


class ReportWriter:
    """Writes the JSON report (``json_path``) and the JUnit XML (``junit_path``) of one run; either may be None.

    ``run`` is the report's ``run`` object. ``timings``, if given, is called for the ``timings`` of
    the partial reports written by :meth:`add` (e.g. ``Timings.as_dict``); without it they hold the
    seconds since the writer was made, as ``total_s``. ``min_interval_s`` throttles the rewrites of
    :meth:`add` (0: rewrite after every record). ``order``, if given, is a sort key of the records:
    they are kept in its order whatever order they are added in (``--jobs`` finishes checks out of
    plan order); without it, in the order added.

    Thread-safe, and safe to call :meth:`finish` from a signal handler that interrupted :meth:`add`
    in the same thread: a write that a newer one has superseded is discarded, never put in place.
    """

    def __init__(self, json_path: str | os.PathLike[str] | None, junit_path: str | os.PathLike[str] | None,
                 run: dict[str, Any], *, timings: Callable[[], dict[str, float]] | None = None,
                 min_interval_s: float = 0.5, clock: Callable[[], float] = time.monotonic,
                 order: Callable[[Record], Any] | None = None) -> None:
        # An empty path stays "" (Path would make it ".") so that check_paths refuses it.
        self.json_path: Path | str | None = Path(json_path) if json_path else json_path  # type: ignore[assignment]
        self.junit_path: Path | str | None = Path(junit_path) if junit_path else junit_path  # type: ignore[assignment]
        self.run = run
        self.versions = environment_versions()
        self.min_interval_s = min_interval_s
        self._timings = timings
        self._clock = clock
        self._started = clock()
        # (record, its JSON text) pairs: one append adds both, so a KeyboardInterrupt cannot split them.
        self._entries: list[tuple[Record, str]] = []
        self.order = order  # may be set until the first record is added
        self._lock = threading.RLock()
        self._generation = 0
        self._last_write: float | None = None
        self._pending = False
        self._final: tuple[dict[str, float], bool, str | None] | None = None
        #: The error of the last partial write that failed (None once one succeeds). Partial writes are
        #: best effort: a full disk must not stop the run. :meth:`finish` raises instead.
        self.write_error: OSError | None = None

    # -- before the run -------------------------------------------------------------------------

    def check_paths(self) -> None:
        """Raise :class:`ReportPathError` if a report could not be written; leaves no file behind."""
        check_writable(self.json_path, "the JSON report")
        check_writable(self.junit_path, "the JUnit report")
        if self.json_path is not None and self.junit_path is not None and \
                os.path.realpath(destination(self.json_path)) == os.path.realpath(destination(self.junit_path)):
            raise ReportPathError(f"--json and --junit name the same file ({self.json_path}): each needs its own")

    # -- during the run -------------------------------------------------------------------------

    @property
    def records(self) -> list[Record]:
        """The records added so far, in order (a copy)."""
        with self._lock:
            return [r for r, _ in self._entries]

    @property
    def finished(self) -> bool:
        return self._final is not None

    def add(self, record: Record) -> None:
        """Append a finished record and (throttled) rewrite the JSON report with ``"complete": false``."""
        text = dumps_record(record) if self.json_path is not None else ""
        with self._lock:
            if self.order is None:
                self._entries.append((record, text))
            else:
                order = self.order
                bisect.insort(self._entries, (record, text), key=lambda entry: order(entry[0]))
            if self._final is not None:
                # Added after finish (a check that ended while the run was being interrupted): the
                # reports are rewritten as finish left them, with this record in them; best effort, as
                # any partial write.
                try:
                    self._write_final()
                except OSError as exc:
                    self.write_error = exc
                return
            self._pending = True
            now = self._clock()
            if self._last_write is None or now - self._last_write >= self.min_interval_s:
                self._write_partial()

    def flush(self) -> None:
        """Write the JSON report now if records were added since the last write."""
        with self._lock:
            if self._pending and self._final is None:
                self._write_partial()

    # -- at the end -----------------------------------------------------------------------------

    def finish(self, timings: dict[str, float], complete: bool = True,
               interrupted: str | int | signal.Signals | None = None) -> None:
        """Write the final JSON report (``"complete": complete``; an incomplete one names the signal in
        ``"interrupted"``, e.g. ``"SIGINT"``, null when none is given) and the JUnit XML.
        Raises OSError if a report cannot be written."""
        with self._lock:
            self._final = (timings, complete, None if complete else _signal_name(interrupted))
            self._write_final()

    # -- writing --------------------------------------------------------------------------------

    def _write_partial(self) -> None:
        self._last_write = self._clock()
        if self.json_path is None:
            self._pending = False
            return
        timings = self._timings() if self._timings is not None else \
            {"total_s": round(self._clock() - self._started, 4)}
        try:
            self._write_json(timings, complete=False)
        except OSError as exc:
            self.write_error = exc
        else:
            self.write_error = None
            self._pending = False

    def _write_final(self) -> None:
        assert self._final is not None
        timings, complete, interrupted = self._final
        self._pending = False
        if self.json_path is not None:
            self._write_json(timings, complete=complete, final=True, interrupted=interrupted)
            sync_directory(self.json_path)
        if self.junit_path is not None:
            write_junit([r for r, _ in self._entries], self.junit_path)
            sync_directory(self.junit_path)
        self.write_error = None

    def _write_json(self, timings: dict[str, float], *, complete: bool, final: bool = False,
                    interrupted: str | None = None) -> None:
        assert self.json_path is not None
        head = report_head([r for r, _ in self._entries], timings, self.run, complete=complete, versions=self.versions)
        if final and not complete:
            # A run cut short says so, and by what: null when the caller named no signal. A partial report
            # written during the run has no "interrupted": the run was still going.
            head = _insert_after(head, "complete", "interrupted", interrupted)
        data = dumps_report(head, [t for _, t in self._entries]).encode("ascii")
        self._generation += 1
        generation = self._generation
        atomic_write(self.json_path, data, commit=lambda: self._generation == generation)


def _insert_after(mapping: dict[str, Any], after: str, key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in mapping.items():
        out[k] = v
        if k == after:
            out[key] = value
    return out
