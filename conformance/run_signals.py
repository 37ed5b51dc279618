"""SIGINT and SIGTERM during a run: they stop it, and the run writes the report of what finished
(exit status 130 or 143)."""
from __future__ import annotations

import signal
from typing import Any


class Interrupted(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class RunSignals:
    """SIGINT and SIGTERM stop the run. The exception can be swallowed where Python ignores
    exceptions (a gc callback), so the signal is also remembered and acted on after the check."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        self.received = signum
        raise Interrupted(signum)

    def __enter__(self) -> "RunSignals":
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def check(self) -> None:
        if self.received is not None:
            raise Interrupted(self.received)
