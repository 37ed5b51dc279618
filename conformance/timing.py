"""Where the run's time goes: inside the backend, inside the reference, the rest is harness."""
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
        return {"total_s": round(total, 4), "backend_s": round(self.backend, 4),
                "reference_s": round(self.reference, 4),
                "harness_s": round(max(total - self.backend - self.reference, 0.0), 4)}
