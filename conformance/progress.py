"""Progress on stderr while a run goes: a rewritten line on a terminal, a line per backend and loss
in logs (once each, also under ``--jobs``, whose jobs work on several losses at a time)."""
from __future__ import annotations

import sys
from typing import TextIO

from loss_conformance.records import CheckId


class Progress:
    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self._announced: set[tuple[str, str]] = set()
        self._width = 0

    def __call__(self, index: int, total: int, cid: CheckId, backend: str = "") -> None:
        if not self.enabled:
            return
        if self.tty:
            line = f"[{index + 1:>4}/{total}] {backend} {cid.label()}"
            self.stream.write("\r" + line.ljust(self._width))
            self._width = len(line)
        elif (backend, cid.loss) not in self._announced:
            self.stream.write(f"[{index + 1:>4}/{total}] {backend} {cid.loss} ...\n")
        self._announced.add((backend, cid.loss))
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
