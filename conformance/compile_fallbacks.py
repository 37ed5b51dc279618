"""torch.compile's silent fallback to eager, seen from inside the worker that calls the backend.

Past its recompile limit (``torch._dynamo.config.recompile_limit``, 8 by default), Dynamo stops
compiling a function and runs it eagerly from then on, with one warning in its log and nothing
the caller can see. A run that draws many shapes, dtypes and keywords reaches that limit quickly,
and would go on checking eager kernels as if they were the compiled ones; so the worker listens
to that log and every reply carries what it said since the previous one.
"""
from __future__ import annotations

import logging

# The logger of torch/_dynamo/convert_frame.py, which writes "torch._dynamo hit config.<limit> (<n>)".
_LOGGER = "torch._dynamo.convert_frame"


class _FallbackLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log record is not the backend's result
            return
        if text.startswith("torch._dynamo hit config."):
            lines = text.splitlines()
            function = next((line.strip() for line in lines if line.strip().startswith("function:")), "")
            self.seen.append(f"{lines[0]}{', ' + function if function else ''}: later calls ran eagerly")


_LOG = _FallbackLog()
logging.getLogger(_LOGGER).addHandler(_LOG)


def drain() -> tuple[str, ...]:
    """What Dynamo reported since the last call: each fallback to eager, once."""
    seen = tuple(dict.fromkeys(_LOG.seen))
    _LOG.seen.clear()
    return seen
