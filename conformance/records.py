"""The outcome of one check: loss x check x reduction x dtype x device, for one backend."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("pass", "fail", "error", "skipped", "not_implemented", "known_deviation")
FAILING = frozenset({"fail", "error"})


@dataclass(frozen=True)
class CheckId:
    loss: str
    check: str
    reduction: str
    dtype: str
    device: str

    def label(self) -> str:
        return f"{self.loss} {self.check} {self.reduction} {self.dtype} {self.device}"


@dataclass
class Record:
    loss: str
    check: str
    reduction: str
    dtype: str
    device: str
    backend: str
    status: str
    examples: int = 0
    seconds: float = 0.0
    finished_at_s: float = 0.0
    message: str = ""
    seed: int | None = None
    counterexample: dict[str, Any] | None = None
    reproduce: str | None = None
    deviation: dict[str, Any] | None = field(default=None)

    @classmethod
    def for_check(cls, cid: CheckId, backend: str, status: str, **extra: Any) -> "Record":
        return cls(cid.loss, cid.check, cid.reduction, cid.dtype, cid.device, backend, status, **extra)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}
