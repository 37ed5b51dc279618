"""The terminal summary: one row per backend x loss x reduction x dtype (x device)."""
from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable

from conformance.records import Record

# Worst first: the verdict of a row is the worst status among its checks.
_SEVERITY = ("error", "fail", "known_deviation", "not_implemented", "skipped", "pass")
_LABEL = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "skipped": "skipped",
          "not_implemented": "not implemented", "known_deviation": "known deviation"}


def _verdict(statuses: Iterable[str]) -> str:
    present = set(statuses)
    if present != {"skipped"}:
        present.discard("skipped")  # a skipped check (e.g. gradients of a NumPy backend) is shown, not a verdict
    return next(s for s in _SEVERITY if s in present)


def render_summary(records: list[Record], timings: dict[str, float], seed: int | None = None) -> str:
    rows: dict[tuple[str, ...], list[Record]] = defaultdict(list)
    devices = {r.device for r in records}
    for r in records:
        key = (r.backend, r.loss, r.reduction, r.dtype) + ((r.device,) if len(devices) > 1 else ())
        rows[key].append(r)
    header = ("backend", "loss", "reduction", "dtype") + (("device",) if len(devices) > 1 else ()) + \
        ("verdict", "checks")
    table = [header]
    for key, items in rows.items():
        checks = " ".join(f"{r.check}:{_LABEL[r.status]}" if r.status != "pass" else r.check for r in items)
        table.append(key + (_LABEL[_verdict(r.status for r in items)], checks))
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in table]
    lines.insert(1, "-" * min(max(len(line) for line in lines), 120))
    lines.extend(_details(records))
    counts = Counter(r.status for r in records)
    summary = ", ".join(f"{counts[s]} {_LABEL[s]}" for s in reversed(_SEVERITY) if counts[s])
    lines.append("")
    lines.append(f"{len(records)} checks: {summary}")
    lines.append(f"time: {timings['total_s']:.1f} s in total, {timings['backend_s']:.1f} s in the backend, "
                 f"{timings['reference_s']:.1f} s in the reference, {timings['harness_s']:.1f} s in the harness"
                 + (f"; seed {seed}" if seed is not None else ""))
    return "\n".join(lines)


def _details(records: list[Record]) -> list[str]:
    out: list[str] = []
    failing = [r for r in records if r.status in ("fail", "error")]
    for r in failing:
        out += ["", f"{_LABEL[r.status]}: {r.backend} {r.loss} {r.check} reduction={r.reduction} dtype={r.dtype} "
                    f"device={r.device}" + (f" (seed {r.seed}, {r.examples} examples)" if r.seed is not None else "")]
        out += ["  " + line for line in r.message.splitlines()]
        if r.reproduce:
            out += ["  reproduce with:"] + ["    " + line for line in r.reproduce.rstrip().splitlines()]
    deviations = {(r.backend, r.loss, r.deviation["reason"]) for r in records
                  if r.status == "known_deviation" and r.deviation}
    for backend, loss, reason in sorted(deviations):
        out += ["", f"known deviation: {backend} {loss}: {reason}"]
    fixed = {(r.backend, r.loss, r.check) for r in records if r.deviation and r.deviation.get("no_longer_occurs")}
    for backend, loss, check in sorted(fixed):
        out += ["", f"no longer deviates: {backend} {loss} {check}: a declared known deviation did not occur "
                    f"on examples where it applies; the spec's entry may be obsolete"]
    return out
