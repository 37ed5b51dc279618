"""The outcome of one check: loss x check x reduction x dtype x device, for one backend."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("pass", "fail", "known_deviation", "not_implemented", "unsupported", "skipped", "crashed", "timeout",
            "nondeterministic", "error")
# A run is green only if none of these occurred; ``error`` is the harness's own failure, never the backend's.
FAILING = frozenset({"fail", "crashed", "timeout", "nondeterministic", "error"})
# Statuses of a check that actually ran against the backend (everything else checked nothing).
RAN = frozenset({"pass", "known_deviation"}) | FAILING


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
    # The failing call alone: the backend's own function and array type, nothing of this project.
    standalone: str | None = None
    deviation: dict[str, Any] | None = field(default=None)
    # Status-specific facts that fit no field above, JSON-ready. A ``nondeterministic`` record puts the two
    # disagreeing results of the same call here as ``{"outputs": [first, second]}``; reports show them.
    detail: dict[str, Any] | None = None

    @classmethod
    def for_check(cls, cid: CheckId, backend: str, status: str, **extra: Any) -> "Record":
        return cls(cid.loss, cid.check, cid.reduction, cid.dtype, cid.device, backend, status, **extra)

    def check_id(self) -> CheckId:
        return CheckId(self.loss, self.check, self.reduction, self.dtype, self.device)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}
