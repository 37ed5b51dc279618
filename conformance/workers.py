"""Backend calls in worker processes, as pytest-xdist runs items: the parent plans, generates,
compares and reports; a worker imports the backend and calls it.

A worker that dies (a segfault, ``os._exit``, ``sys.exit``, a kill) or overruns its time ends the
request with ``WorkerLost``, and the next request starts a fresh worker, so one bad kernel costs
one check, never the run. Workers are forked where that is safe (Linux, CUDA not yet initialised
in the parent: fast, and the backend object is inherited) and spawned otherwise; a spawned worker
gets the backend and the specs by name and path.
"""
from __future__ import annotations

import faulthandler
import multiprocessing as mp
import os
import queue
import re
import signal
import sys
import tempfile
import time
import weakref
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch

from loss_conformance import wire
from loss_conformance.backends import Backend, BackendError, load_backend
from loss_conformance.deviations import with_deviations
from loss_conformance.execution import Reply, Request, execute, widened
from loss_conformance.fork_safety import autograd_survives_fork
from loss_conformance.jax_bridge import jax_started
from loss_conformance.warm import warm_before_fork
from loss_conformance_reference.loader import load_spec
from loss_conformance_reference.model import LossSpec

DEFAULT_TIMEOUT = 60.0
_THREAD_ADDRESS = re.compile(r"^(\s*(?:Current thread|Thread)) 0x[0-9a-fA-F]+")
_MESSAGE_LIMIT = 4000  # a backend's exception text is kept, within reason


class WorkerLost(BaseException):
    """The worker died (``status`` crashed) or overran its time (``status`` timeout) during a request.

    A BaseException, so that Hypothesis stops at once instead of shrinking: every shrink step would
    cost a new worker, or a whole timeout."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class BackendInfo:
    """What the parent needs to know of a backend without importing it."""

    name: str
    array_type: str
    implements: frozenset[str]
    accepts: dict[str, frozenset[str]]
    capabilities: Any = None  # the backend's loss_conformance_capabilities, checked by the parent


class BackendSource:
    """How a worker gets its backend: the object itself when forked, by name when spawned."""

    def __init__(self, backend: Backend | str | None) -> None:
        self.backend = backend

    def __call__(self) -> Backend:
        return self.backend if isinstance(self.backend, Backend) else load_backend(self.backend)

    @property
    def importable(self) -> str | None:
        """The name the backend can be imported by: given as one, or the one it was loaded by (None
        for an object handed over as it is)."""
        return self.backend if isinstance(self.backend, str) else getattr(self.backend, "loaded_as", None)

    def __getstate__(self) -> dict[str, Any]:
        # A spawned worker loads a named backend again by its name (a module object cannot be pickled).
        return {"backend": self.importable or self.backend}



class SpecSource:
    """How a worker (or a ``--jobs`` process) gets the specs: inherited when forked, loaded again from
    their files when spawned, with the user's ``--known-deviations`` file (``deviations``) added."""

    def __init__(self, specs: dict[str, LossSpec], deviations: str | None = None) -> None:
        self.specs: dict[str, LossSpec] | None = specs
        self.paths = tuple(str(s.path) for s in specs.values())
        self.deviations = deviations

    def __call__(self) -> dict[str, LossSpec]:
        if self.specs is None:
            from loss_conformance_reference.catalogue import Catalogue

            self.specs = Catalogue(with_deviations({spec.id: spec for spec in map(load_spec, self.paths)},
                                                   self.deviations))
        return self.specs

    def __getstate__(self) -> dict[str, Any]:
        return {"specs": None, "paths": self.paths, "deviations": self.deviations}


def die_with_parent() -> None:
    """Linux: the kernel kills the worker if the parent dies, even by SIGKILL."""
    if sys.platform != "linux":
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _serve(conn: Connection, backend_source: BackendSource, spec_source: SpecSource, threads: int,
           log_path: str) -> None:
    """The worker's loop: load the backend, report what it implements, then answer requests."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    die_with_parent()
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    faulthandler.enable(file=log, all_threads=True)
    if hasattr(faulthandler, "register") and hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, file=log, all_threads=True)  # where a hung call is
    torch.set_num_threads(threads)
    try:
        backend = backend_source()
        specs = spec_source()
        info = BackendInfo(backend.name, backend.array_type,
                           frozenset(s.id for s in specs.values() if backend.implements(s)),
                           {s.id: backend.accepts(s) for s in specs.values() if backend.implements(s)},
                           backend.capabilities)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as a configuration error
        wire.send(conn, ("error", str(exc) if isinstance(exc, BackendError) else f"{type(exc).__name__}: {exc}"))
        return
    wire.send(conn, ("ready", info))
    while True:
        try:
            request = wire.recv(conn)
        except (EOFError, OSError):
            return
        if request is None:
            return
        reply = execute(backend, specs[request.loss], request)
        wire.send(conn, ("reply", _bounded(reply)))


def _bounded(reply: Reply) -> Reply:
    if reply.raised and len(reply.raised) > _MESSAGE_LIMIT:
        return Reply(raised=reply.raised[:_MESSAGE_LIMIT] + " ...")
    return reply


def process_context() -> mp.context.BaseContext:
    # CUDA cannot be used in a child forked after the parent used it, nor JAX once its runtime (and
    # its threads) started in the parent: the child deadlocks on the first JAX call. Nor can a child
    # differentiate once the parent did with an accelerator visible (``loss_conformance.fork_safety``).
    if sys.platform == "linux" and not torch.cuda.is_initialized() and not jax_started() \
            and autograd_survives_fork():
        return mp.get_context("fork")
    return mp.get_context("spawn")


def _exit_reason(code: int | None, during: str = "during the call") -> str:
    if code is None:
        return "the worker stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the worker process died of {name}"
    return (f"the worker process exited with status {code} {during} "
            f"(the backend ended the process: sys.exit, os._exit or similar)")


def _release(held: dict[str, Any], log: Path) -> None:
    process, conn = held["process"], held["conn"]
    if process is not None and process.is_alive():
        process.kill()
        process.join(5)
    if conn is not None:
        conn.close()
    log.unlink(missing_ok=True)


class Worker:
    """One process that runs one backend; replaced transparently after it is lost."""

    def __init__(self, backend: BackendSource, specs: SpecSource, threads: int = 1,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.backend, self.specs, self.threads, self.timeout = backend, specs, threads, timeout
        self.info: BackendInfo | None = None
        self._started = False
        self._log = Path(tempfile.mkstemp(prefix="loss-conformance-worker-", suffix=".log")[1])
        # What a worker that is dropped without close() must still release: its process and its log.
        self._held: dict[str, Any] = {"process": None, "conn": None}
        weakref.finalize(self, _release, self._held, self._log)

    @property
    def process(self) -> Any:
        return self._held["process"]

    @process.setter
    def process(self, value: Any) -> None:
        self._held["process"] = value

    @property
    def conn(self) -> Connection | None:
        return self._held["conn"]

    @conn.setter
    def conn(self, value: Connection | None) -> None:
        self._held["conn"] = value

    def start(self) -> BackendInfo:
        """Start the process and load the backend; BackendError if it cannot be loaded."""
        ctx = process_context()
        if self._started and ctx.get_start_method() == "fork":
            # A replacement (the last worker crashed or overran): this process loads once what each
            # replacement would load again (``loss_conformance.warm``), for a backend that keeps crashing.
            warm_before_fork()
        self._started = True
        parent, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, self.backend, self.specs, self.threads,
                                                         str(self._log)), daemon=True, name="loss-conformance-worker")
        try:
            self.process.start()
        except Exception as exc:  # noqa: BLE001 - pickling the backend for a spawned worker
            raise BackendError(f"the backend cannot be sent to a spawned worker ({exc}); name it as "
                               f"module:attr instead of passing an object") from None
        finally:
            child.close()
        self.conn = parent
        if not parent.poll(max(self.timeout, 1.0)):
            self._stop()
            raise BackendError(f"the backend did not load within {self.timeout:g} s")
        try:
            kind, payload = wire.recv(parent)
        except (EOFError, OSError):
            self.process.join(5)
            reason = _exit_reason(self.process.exitcode, "while loading the backend")
            self._stop()
            raise BackendError(f"the backend could not be loaded: {reason}{self._fault_log()}") from None
        if kind == "error":
            self._stop()
            raise BackendError(payload)
        self.info = payload
        return payload

    def request(self, request: Request) -> Reply:
        """Run ``request``; ``WorkerLost`` if the worker dies or overruns, after which it is replaced."""
        if self.conn is None:
            self.start()
        assert self.conn is not None
        try:
            wire.send(self.conn, request)
            if not self.conn.poll(self.timeout):
                where = self._hung_at()
                self._stop()
                raise WorkerLost("timeout", f"the call did not return within {self.timeout:g} s (--timeout)"
                                 f"{where}")
            kind, reply = wire.recv(self.conn)
        except (EOFError, OSError, BrokenPipeError):
            self.process.join(5)
            reason = _exit_reason(self.process.exitcode)
            log = self._fault_log()
            self._stop()
            raise WorkerLost("crashed", f"{reason}{log}") from None
        return widened(reply)

    def _hung_at(self) -> str:
        """Ask faulthandler for the hung worker's stack, for the record."""
        if not hasattr(signal, "SIGUSR1") or self.process is None or not self.process.is_alive():
            return ""
        try:
            os.kill(self.process.pid, signal.SIGUSR1)
        except OSError:
            return ""
        time.sleep(0.3)
        return self._fault_log("where it was")

    def _fault_log(self, title: str = "faulthandler") -> str:
        """faulthandler's dump, innermost frame first, down to the worker's own loop (a forked worker's
        stack also holds the parent's frames from the moment of the fork: noise). Thread addresses
        (``Current thread 0x7ff2...``) differ from process to process: they are left out, so that two
        runs of the same seed, serial or ``--jobs``, give the same record."""
        try:
            text = self._log.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return ""
        lines: list[str] = []
        for line in text.splitlines():
            if " in _serve" in line and "workers.py" in line:
                break
            lines.append(_THREAD_ADDRESS.sub(r"\1", line))
        return f"\n{title}:\n" + "\n".join("  " + line for line in lines[:30]) if lines else ""

    def _stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.kill()
        if self.process is not None:
            self.process.join(5)
        if self.conn is not None:
            self.conn.close()
        self.process, self.conn = None, None
        try:
            self._log.write_text("")
        except OSError:
            pass

    def close(self) -> None:
        if self.conn is not None and self.process is not None and self.process.is_alive():
            try:
                wire.send(self.conn, None)
                self.process.join(2)
            except OSError:
                pass
        self._stop()
        self._log.unlink(missing_ok=True)


class WorkerPool:
    """``size`` workers of one backend; a request takes whichever is idle (``--jobs`` runs checks
    side by side on it)."""

    def __init__(self, backend: BackendSource, specs: SpecSource, size: int = 1, threads: int = 1,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.workers = [Worker(backend, specs, threads, timeout) for _ in range(max(size, 1))]
        self._idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        for worker in self.workers:
            self._idle.put(worker)
        self._info: BackendInfo | None = None

    @property
    def info(self) -> BackendInfo:
        if self._info is None:
            worker = self._idle.get()
            try:
                self._info = worker.info or worker.start()
            finally:
                self._idle.put(worker)
        return self._info

    def request(self, request: Request) -> Reply:
        worker = self._idle.get()
        try:
            return worker.request(request)
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


class IsolatedBackend(Backend):
    """A backend seen from the parent: its facts come from a worker, its calls go to one."""

    def __init__(self, backend: Backend | str | None, specs: dict[str, LossSpec], jobs: int = 1, threads: int = 1,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.source = BackendSource(backend)  # what it was made from: --jobs processes start their own from it
        self.pool = WorkerPool(self.source, SpecSource(specs), jobs, threads, timeout)
        info = self.pool.info
        self.name, self.array_type, self.capabilities = info.name, info.array_type, info.capabilities
        # The name it can be imported by (the default backend's when none was named).
        self.loaded_as = self.source.importable or (info.name if backend is None else None)

    def implements(self, spec: LossSpec) -> bool:
        return spec.id in self.pool.info.implements

    def accepts(self, spec: LossSpec) -> frozenset[str]:
        return self.pool.info.accepts.get(spec.id, frozenset())

    def run(self, request: Request) -> Reply:
        return self.pool.request(request)

    def call(self, spec: LossSpec, inputs: Any, params: Any) -> Any:
        raise TypeError("an isolated backend is called through run(Request)")

    def close(self) -> None:
        self.pool.close()

