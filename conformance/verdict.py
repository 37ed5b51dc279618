"""The exit status of a run: green only when every check ran and conformed."""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from loss_conformance.records import FAILING, RAN, Record

EXIT_OK, EXIT_NONCONFORMING, EXIT_USAGE, EXIT_NOTHING_CHECKED = 0, 1, 2, 3
EXIT_SIGINT, EXIT_SIGTERM = 130, 143

EXIT_STATUS_HELP = ("Exit status: 0 every check ran and conformed (known deviations included); 1 a check did "
                    "not conform (fail, crashed, timeout, nondeterministic, error); 2 usage or configuration "
                    "error (unknown loss, bad spec or deviation file, backend that cannot be loaded, report path "
                    "that cannot be written), detected before any check runs where possible; 3 nothing was "
                    "checked (the backend implements none of the selected losses, or every check of a selected "
                    "dtype or device was skipped or unsupported); 130 / 143 interrupted by SIGINT / SIGTERM, "
                    "after writing a partial report.")


def verdict(records: Iterable[Record], backend: str, dtypes: Iterable[str], devices: Iterable[str]) -> tuple[int, str]:
    """The exit status and a one-line reason. ``backend`` is the backend under test: a torch
    baseline that ran beside it does not make a run of nothing green."""
    records = list(records)
    failing = [r for r in records if r.status in FAILING]
    if failing:
        counts = Counter(r.status for r in failing)
        return EXIT_NONCONFORMING, "not conforming: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    mine = [r for r in records if r.backend == backend]
    if not any(r.status in RAN for r in mine):
        return EXIT_NOTHING_CHECKED, f"nothing was checked: {_why_not(mine, backend)}"
    for device in devices:
        for dtype in dtypes:
            scoped = [r for r in mine if r.dtype == dtype and r.device == device]
            if scoped and not any(r.status in RAN for r in scoped):
                return EXIT_NOTHING_CHECKED, f"nothing was checked in {dtype} on {device}: {_why_not(scoped, backend)}"
    return EXIT_OK, "every check ran and conformed"


def _why_not(records: list[Record], backend: str) -> str:
    if records and all(r.status == "not_implemented" for r in records):
        return (f"{backend} implements none of the selected losses (a backend is a module or object with "
                f"functions named like torch.nn.functional's losses, not one function)")
    reasons = Counter(f"{r.status}: {r.message}" if r.message else r.status for r in records)
    return "; ".join(f"{reason} ({n} checks)" for reason, n in reasons.most_common(3)) or "no check was planned"
