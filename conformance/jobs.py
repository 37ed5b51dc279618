"""``run --jobs N``: checks side by side in N job processes, each the parent of its own backend workers.

A job process does for the checks it is handed what a serial run does: it draws the cases, calls the
backend in a worker process of its own (a crash or a hang costs one check, as in a serial run),
compares and makes the record. The run's process plans, hands out groups of checks (one backend,
loss, kind of check and device, as ``--shard`` groups them: a group's first check pays a setup the
others reuse) one at a time to whichever job is free, collects the records and writes the reports.
Processes, not threads: drawing and comparing are Python, and hold the GIL.

The records are the serial run's: a check's seed comes from the run's seed and the check alone
(``Runner.check_seed``), and the report puts the records in plan order (``ReportWriter(order=...)``)
whatever order they finish in.
"""
from __future__ import annotations

import os
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from loss_conformance.records import CheckId, Record
from loss_conformance.runner import Runner
from loss_conformance.shards import group_name
from loss_conformance.timing import PooledTimings, Timings
from loss_conformance.workers import DEFAULT_TIMEOUT, BackendSource, IsolatedBackend, SpecSource, die_with_parent, \
    process_context
from loss_conformance_reference.errors import SpecError

AUTO = "auto"
# One piece of work: the backend (its index in the run's list) and the check.
Work = tuple[int, CheckId]


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity where the platform has one, else all."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def parse_jobs(text: str) -> int:
    """``"auto"`` (the available cores) or a whole number of at least 1; anything else is a ValueError."""
    if text.strip().lower() == AUTO:
        return available_cores()
    try:
        jobs = int(text)
    except ValueError:
        raise ValueError(f"expected a whole number of at least 1, or auto, not {text!r}") from None
    if jobs < 1:
        raise ValueError(f"{text}: the number of jobs must be at least 1 (1 runs the checks one after another)")
    return jobs


def groups(work: Sequence[Work]) -> list[list[int]]:
    """The positions in ``work`` of each group of checks (backend, loss, kind of check, device), the
    groups in the order of their first check."""
    out: dict[tuple[int, str], list[int]] = {}
    for position, (backend, cid) in enumerate(work):
        out.setdefault((backend, group_name(cid)), []).append(position)
    return list(out.values())


@dataclass(frozen=True)
class JobSettings:
    """What a job process needs to run checks as the run's own process would; picklable, for a
    spawned job (specs and backends are then loaded again by path and name)."""

    backends: tuple[BackendSource, ...]
    specs: SpecSource
    max_examples: int
    seed: int
    threads: int = 1
    timeout: float = DEFAULT_TIMEOUT
    cases_dir: str | None = None
    # For the backend under test (the first): what it declares it supports, and whether it is granted
    # torch's recorded deviations (--inherit-torch-deviations).
    capabilities: Any = None
    inherit_torch_deviations: bool = False
    counterexamples: int = 1


class _Stopped(BaseException):
    """The run's process stopped this job (SIGTERM). Not SystemExit, which Hypothesis takes for a
    failure of the test and starts shrinking; a BaseException of its own ends the search at once."""


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise _Stopped()  # unwinds, so that the job's workers are closed and their logs removed


def _job(conn: Connection, settings: JobSettings) -> None:
    """A job process: run each batch of checks it is sent, one record message per check, until None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's process to handle: it stops the jobs
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    die_with_parent()
    torch.set_num_threads(settings.threads)
    specs = settings.specs()
    timings = Timings()
    runners: dict[int, Runner] = {}
    try:
        while (batch := conn.recv()) is not None:
            for position, which, cid in batch:
                conn.send(("start", position))
                if which not in runners:
                    backend = IsolatedBackend(settings.backends[which].backend, specs, threads=settings.threads,
                                              timeout=settings.timeout)
                    under_test = which == 0
                    granted = specs.inheriting_torch_deviations(backend.name) \
                        if settings.inherit_torch_deviations and under_test else specs
                    runners[which] = Runner(granted, backend, settings.max_examples, settings.seed, timings,
                                            cases_dir=Path(settings.cases_dir) if settings.cases_dir else None,
                                            capabilities=settings.capabilities if under_test else None,
                                            counterexamples=settings.counterexamples)
                conn.send(("record", position, runners[which].run_one(cid), timings.spent()))
            conn.send(("idle", timings.spent()))
    except SpecError as exc:  # a deviation's `when` failed: a configuration error of the whole run
        conn.send(("spec_error", (exc.path, exc.line, exc.field, exc.message)))
    except (EOFError, OSError, _Stopped):
        pass  # the run's process is gone, or stopped this job
    except Exception:  # noqa: BLE001 - the harness failed here: the check it ran is an error record
        conn.send(("error", traceback.format_exc(limit=8)))
    finally:
        for runner in runners.values():
            runner.close()


@dataclass
class _Job:
    process: Any
    conn: Connection
    part: int  # its share of the timings
    batch: deque[int] = field(default_factory=deque)  # positions handed to it and not yet recorded
    current: int | None = None
    failure: str = ""
    finishing: bool = False


class ParallelRun:
    """Runs ``work`` on ``jobs`` job processes; ``names`` are the backends' names, for the progress line."""

    def __init__(self, settings: JobSettings, jobs: int, names: Sequence[str], timings: PooledTimings) -> None:
        self.settings, self.jobs, self.names, self.timings = settings, jobs, list(names), timings
        self._live: dict[Connection, _Job] = {}
        self._parts = 0

    def run(self, work: Sequence[Work], on_record: Callable[[Record], None],
            progress: Callable[[int, int, CheckId, str], None] | None = None) -> None:
        """Run every check of ``work``; ``on_record`` gets each record as it finishes (in any order).
        A SpecError of a job is raised here; on any exception, the jobs are stopped."""
        pending = deque(groups(work))
        started = 0
        try:
            for _ in range(min(self.jobs, len(pending))):
                self._hand_out(self._start(), pending, work)
            while self._live:
                for conn in wait(list(self._live)):
                    job = self._live[conn]  # type: ignore[index]
                    try:
                        message = job.conn.recv()
                    except (EOFError, OSError):
                        self._ended(job, pending, work, on_record)
                        continue
                    kind = message[0]
                    if kind == "start":
                        job.current = message[1]
                        which, cid = work[job.current]
                        if progress:
                            progress(started, len(work), cid, self.names[which])
                        started += 1
                    elif kind == "record":
                        _, position, record, spent = message
                        job.batch.remove(position)
                        job.current = None
                        self.timings.update(job.part, spent)
                        record.finished_at_s = round(time.perf_counter() - self.timings.started, 4)
                        on_record(record)
                    elif kind == "idle":
                        self.timings.update(job.part, message[1])
                        self._hand_out(job, pending, work)
                    elif kind == "spec_error":
                        raise SpecError(*message[1])
                    else:  # "error": the job ends; its check is recorded when its connection closes
                        job.failure = message[1]
        finally:
            self.close()

    def _start(self) -> _Job:
        ctx = process_context()
        parent, child = ctx.Pipe()
        process = ctx.Process(target=_job, args=(child, self.settings), name="loss-conformance-job")
        process.start()
        child.close()
        self._parts += 1
        job = _Job(process, parent, self._parts)
        self._live[parent] = job
        return job

    def _hand_out(self, job: _Job, pending: deque[list[int]], work: Sequence[Work]) -> None:
        """The next group to ``job``, or None (stop) when there is none."""
        if not pending:
            job.finishing = True
            try:
                job.conn.send(None)
            except OSError:
                pass
            return
        job.batch = deque(pending.popleft())
        try:
            job.conn.send([(position, *work[position]) for position in job.batch])
        except OSError:
            pass  # the job died: its connection closes, and _ended hands the group on

    def _ended(self, job: _Job, pending: deque[list[int]], work: Sequence[Work],
               on_record: Callable[[Record], None]) -> None:
        """A job's connection closed: it finished, or it died. The check a dead job was running is an
        ``error`` record (the harness failed, not the backend: backends run in the job's workers); the
        rest of its group goes back to the queue, for a fresh job."""
        del self._live[job.conn]
        job.conn.close()
        job.process.join(5)
        if job.finishing and not job.batch:
            return
        if job.current is None and job.batch:
            job.current = job.batch[0]  # died before it began: its first check is charged, so that restarts end
        if job.current is not None:
            which, cid = work[job.current]
            why = job.failure or f"the job process running it died (exit status {job.process.exitcode})"
            on_record(Record.for_check(cid, self.names[which], "error", message=why))
            job.batch.remove(job.current)
        if job.batch:
            pending.appendleft(list(job.batch))
        if pending:
            self._hand_out(self._start(), pending, work)

    def close(self) -> None:
        """Stop the jobs still running (an interrupted run: their checks in progress are not recorded).
        An idle job is told to stop, and closes its workers; a busy one is terminated."""
        for job in self._live.values():
            try:
                job.conn.send(None)
            except OSError:
                pass
        for job in self._live.values():
            job.process.join(0.5)
            if job.process.is_alive():
                job.process.terminate()
        for job in self._live.values():
            job.process.join(5)
            if job.process.is_alive():
                job.process.kill()
                job.process.join(5)
            job.conn.close()
        self._live.clear()
