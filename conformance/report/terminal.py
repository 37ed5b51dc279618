"""The terminal summary: one row per backend x loss x reduction x dtype (x device).

Everything a backend can influence (messages, names, values) is escaped before it is printed: an
exception message cannot recolour, clear or overwrite the terminal (see :mod:`loss_conformance.report.text`).
"""
from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from typing import Iterable

from loss_conformance.records import FAILING, Record
from loss_conformance.report.details import other_causes, outputs_of
from loss_conformance.report.text import clip, escape_control

# Worst first: the verdict of a row is the worst status among its checks.
SEVERITY = ("error", "crashed", "timeout", "nondeterministic", "fail", "known_deviation", "not_implemented",
            "unsupported", "skipped", "pass")
LABELS = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "crashed": "CRASHED", "timeout": "TIMEOUT",
          "nondeterministic": "NONDETERMINISTIC", "skipped": "skipped", "unsupported": "unsupported",
          "not_implemented": "not implemented", "known_deviation": "known deviation"}
_SEVERITY = SEVERITY  # the old private names, kept for anyone who imported them
_LABEL = LABELS


def _label(status: str) -> str:
    return LABELS.get(status) or escape_control(status).upper()


def _rank(status: str) -> int:
    # A status this module does not know ranks worst: it is shown, never hidden behind a pass.
    return SEVERITY.index(status) if status in SEVERITY else -1


def _verdict(statuses: Iterable[str]) -> str:
    present = set(statuses)
    if present != {"skipped"}:
        present.discard("skipped")  # a skipped check (e.g. gradients of a NumPy backend) is shown, not a verdict
    return min(present, key=_rank)


def render_summary(records: list[Record], timings: dict[str, float], seed: int | None = None) -> str:
    rows: dict[tuple[str, ...], list[Record]] = defaultdict(list)
    devices = {r.device for r in records}
    lacking = _lacking(records)
    for r in records:
        if (r.backend, r.loss) in lacking:  # a loss the backend does not have: one row, not one per dtype
            key = (r.backend, r.loss, "-", "-") + (("-",) if len(devices) > 1 else ())
        else:
            key = (r.backend, r.loss, r.reduction, r.dtype) + ((r.device,) if len(devices) > 1 else ())
        rows[tuple(escape_control(k) for k in key)].append(r)
    header = ("backend", "loss", "reduction", "dtype") + (("device",) if len(devices) > 1 else ()) + \
        ("verdict", "checks")
    table = [header]
    for key, items in rows.items():
        if (items[0].backend, items[0].loss) in lacking:
            table.append(key + (_label("not_implemented"), f"({len(items)} checks)"))
            continue
        checks = " ".join(escape_control(r.check) + (f":{_label(r.status)}" if r.status != "pass" else "")
                          for r in items)
        table.append(key + (_label(_verdict(r.status for r in items)), checks))
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1] for row in table]
    lines.insert(1, "-" * min(max(len(line) for line in lines), 120))
    lines.extend(_details(records))
    counts = Counter(r.status for r in records)
    order = list(reversed(SEVERITY)) + sorted(set(counts) - set(SEVERITY))
    summary = ", ".join(f"{counts[s]} {_label(s)}" for s in order if counts[s])
    lines.append("")
    lines.append(f"{len(records)} checks: {summary}")
    lines.append(_time_line(timings, seed))
    return "\n".join(lines)


def _by_cause(failing: list[Record]) -> list[list[Record]]:
    """Failing records grouped by cause: backend, loss, check, status and what the message says
    before its values (``output values differ``, ``backend raised ValueError``), in order."""
    groups: dict[tuple[str, ...], list[Record]] = {}
    for r in failing:
        head = re.split(r"[:;(\n]|\d", r.message or "", maxsplit=1)[0].strip()
        groups.setdefault((r.backend, r.loss, r.check, r.status, head), []).append(r)
    return list(groups.values())


def _size(record: Record) -> int:
    """How many input elements the record's counterexample has (0 where it has none)."""
    inputs = (record.counterexample or {}).get("inputs") if isinstance(record.counterexample, dict) else None
    total = 0
    for value in (inputs or {}).values():
        shape = value.get("shape") if isinstance(value, dict) else None
        if isinstance(shape, list) and all(isinstance(n, int) for n in shape):
            total += math.prod(shape)
    return total


def _lacking(records: list[Record]) -> set[tuple[str, str]]:
    """(backend, loss) pairs whose every record is ``not_implemented``."""
    statuses: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in records:
        statuses[(r.backend, r.loss)].add(r.status)
    return {key for key, found in statuses.items() if found == {"not_implemented"}}


def _time_line(timings: dict[str, float], seed: int | None) -> str:
    parts = [f"{timings['total_s']:.1f} s in total"] if "total_s" in timings else []
    if parts and timings.get("wall_s", timings["total_s"]) != timings["total_s"]:  # --jobs: process time summed
        parts = [f"{timings['wall_s']:.1f} s wall time, {timings['total_s']:.1f} s in the jobs together"]
    for key, where in (("backend_s", "in the backend"), ("reference_s", "in the reference"),
                       ("harness_s", "in the harness")):
        if key in timings:
            parts.append(f"{timings[key]:.1f} s {where}")
    return "time: " + ", ".join(parts) + (f"; seed {seed}" if seed is not None else "")


def _indented(text: str, prefix: str) -> list[str]:
    # Escape first, then split on \n only: str.splitlines would also break on \r, \x0b, \x1c, ...
    return [prefix + line for line in escape_control(text.rstrip("\n")).split("\n")]


def _details(records: list[Record]) -> list[str]:
    out: list[str] = []
    failing = sorted((r for r in records if r.status in FAILING), key=lambda r: _rank(r.status))
    for group in _by_cause(failing):
        r = min(group, key=_size)  # the smallest counterexample speaks for the group
        where = escape_control(f"{r.backend} {r.loss} {r.check} reduction={r.reduction} dtype={r.dtype} "
                               f"device={r.device}")
        facts = ([f"seed {r.seed}"] if r.seed is not None else []) + \
            ([f"{r.examples} examples"] if r.examples or r.seed is not None else [])
        out += ["", f"{_label(r.status)}: {where}" + (f" ({', '.join(facts)})" if facts else "")]
        if len(group) > 1:
            others = ", ".join(escape_control(f"{o.reduction}/{o.dtype}/{o.device}") for o in group if o is not r)
            out += _indented(f"and {len(group) - 1} more record(s) of the same cause ({others}); the smallest "
                             "counterexample is shown", "  ")
        if r.message:
            out += _indented(r.message, "  ")
        outputs = outputs_of(r)
        if outputs is not None:
            out += _indented(f"first call:  {clip(repr(outputs[0]), 1000)}", "  ")
            out += _indented(f"second call: {clip(repr(outputs[1]), 1000)}", "  ")
        if r.reproduce:
            out += ["  reproduce with:"] + _indented(r.reproduce, "    ")
        if r.standalone:
            out += ["  or, for a bug report, the call alone (nothing of this suite imported):"] + \
                _indented(r.standalone, "    ")
        if not r.reproduce and r.counterexample:
            out += _indented(f"counterexample: {clip(repr(r.counterexample), 1000)}", "  ")
        for other in other_causes(r, 1000):
            out += _indented(other, "  ")
    deviations = {(r.backend, r.loss, r.deviation["reason"]) for r in records
                  if r.status == "known_deviation" and r.deviation and "reason" in r.deviation}
    for backend, loss, reason in sorted(deviations, key=lambda t: tuple(map(str, t))):
        out += [""] + _indented(f"known deviation: {backend} {loss}: {reason}", "")
    fixed = {(r.backend, r.loss, r.check) for r in records if r.deviation and r.deviation.get("no_longer_occurs")}
    for backend, loss, check in sorted(fixed):
        out += [""] + _indented(f"no longer deviates: {backend} {loss} {check}: a declared known deviation did "
                                "not occur on examples where it applies: fixed in this torch (scope the entry to "
                                "the versions it holds in, torch: '<VERSION'), or its condition is too broad", "")
    fallbacks = sorted({(r.backend, r.loss) for r in records if (r.detail or {}).get("compile_fallbacks")})
    for backend, loss in fallbacks:
        said = sorted({n for r in records if (r.backend, r.loss) == (backend, loss)
                       for n in (r.detail or {}).get("compile_fallbacks", ())})
        out += [""] + _indented(f"eager, not compiled: {backend} {loss}: torch.compile fell back to eager during its "
                                f"checks, which then checked eager kernels ({'; '.join(said)}); raise "
                                "torch._dynamo.config.recompile_limit (and accumulated_recompile_limit): "
                                "dynamic=True covers new sizes, not a new rank, dtype or keyword", "")
    return out
