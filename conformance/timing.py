"""Where the run's time goes: inside the backend, inside the reference, the rest is harness.

``total_s`` is process time: a serial run's elapsed time, or under ``--jobs N`` the job processes'
times summed (as ``merge`` sums its shards'), so that ``harness_s = total_s - backend_s - reference_s``
and each share is of ``total_s`` either way. ``wall_s`` is the run's elapsed time."""
from __future__ import annotations

import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Iterator


@dataclass
class Timings:
    backend: float = 0.0
    reference: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    _depth: dict[str, int] = field(default_factory=lambda: {"backend": 0, "reference": 0})

    @contextmanager
    def _timed(self, bucket: str) -> Iterator[None]:
        # Nested sections (gradcheck calling the backend) count once, at the outermost level.
        self._depth[bucket] += 1
        start = time.perf_counter()
        try:
            yield
        finally:
            self._depth[bucket] -= 1
            if not self._depth[bucket]:
                setattr(self, bucket, getattr(self, bucket) + time.perf_counter() - start)

    def in_backend(self) -> AbstractContextManager[None]:
        return self._timed("backend")

    def in_reference(self) -> AbstractContextManager[None]:
        return self._timed("reference")

    def as_dict(self) -> dict[str, float]:
        total = time.perf_counter() - self.started
        return _as_dict(total, self.backend, self.reference, total)

    def spent(self) -> tuple[float, float, float]:
        """(backend, reference, elapsed) seconds so far: what a job process reports to the run's."""
        return self.backend, self.reference, time.perf_counter() - self.started


class PooledTimings:
    """The timings of a run whose checks ran in several processes (``--jobs``): each reports its
    ``Timings.spent()``; process time is summed over them, ``wall_s`` is this run's elapsed time."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self._parts: dict[int, tuple[float, float, float]] = {}

    def update(self, part: int, spent: tuple[float, float, float]) -> None:
        self._parts[part] = spent

    def as_dict(self) -> dict[str, float]:
        backend, reference, busy = (sum(p[i] for p in self._parts.values()) for i in range(3))
        return _as_dict(busy, backend, reference, time.perf_counter() - self.started)


def _as_dict(total: float, backend: float, reference: float, wall: float) -> dict[str, float]:
    return {"total_s": round(total, 4), "backend_s": round(backend, 4), "reference_s": round(reference, 4),
            "harness_s": round(max(total - backend - reference, 0.0), 4), "wall_s": round(wall, 4)}
