"""``loss-conformance diff A.json B.json``: what changed between two runs, record by record.

Records are matched by backend, loss, check, reduction, dtype and device. A run turns red (exit
status 1) on a *new* failure only: a record failing in B that was not failing in A, or that A did
not have. A failure that A had too, even under another failing status, is old news. A record that goes
between ``pass`` and ``known_deviation`` under a deviation declared ``unstable`` (it depends on
uninitialised memory) is left out: which of the two it is, is chance.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from loss_conformance.records import FAILING
from loss_conformance.report.read import KEY_FIELDS, RecordKey, is_complete, record_key
from loss_conformance.report.text import clip, escape_control

DIFF_FORMAT = "loss-conformance-diff"
DIFF_VERSION = 1

# The kinds of change, in the order the table shows them (the ones that matter first).
KINDS = ("new_failure", "still_failing", "no_longer_failing", "changed", "added", "removed")
TITLES = {"new_failure": "new failures", "still_failing": "still failing, with another status",
          "no_longer_failing": "no longer failing", "changed": "other status changes",
          "added": "added (only in B)", "removed": "removed (only in A)"}
_SHORT = {"new_failure": "new failures", "still_failing": "still failing", "no_longer_failing": "no longer failing",
          "changed": "other changes", "added": "added", "removed": "removed"}

# What is said, as context, when it differs between the two runs: it may explain the changes.
_VERSIONS = ("torch", "hypothesis", "numpy", "python", "loss_conformance")
_OPTIONS = ("backend", "seed", "profile", "max_examples", "dtypes", "devices", "losses", "checks", "timeout_s",
            "shard")


@dataclass(frozen=True)
class Change:
    key: RecordKey
    kind: str
    old: str | None  # None: only in B
    new: str | None  # None: only in A
    message: str = ""  # B's message, for a new failure
    seed: int | None = None  # B's seed, for a new failure

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(zip(KEY_FIELDS, self.key))
        out.update(change=self.kind, old=self.old, new=self.new)
        if self.kind == "new_failure":
            out.update(message=self.message, seed=self.seed)
        return out


@dataclass
class ReportDiff:
    changes: list[Change]
    unchanged: int
    context: list[tuple[str, Any, Any]] = field(default_factory=list)  # (what, in A, in B)
    unstable: int = 0  # changes left out: between pass and a known deviation declared unstable

    @property
    def new_failures(self) -> list[Change]:
        return [c for c in self.changes if c.kind == "new_failure"]

    def counts(self) -> dict[str, int]:
        return {kind: sum(c.kind == kind for c in self.changes) for kind in KINDS}

    def exit_status(self) -> int:
        return 1 if self.new_failures else 0


def classify(old: str | None, new: str | None) -> str | None:
    """The kind of change from status ``old`` (None: absent) to ``new``; None when nothing changed."""
    if old == new:
        return None
    if old is None:
        return "new_failure" if new in FAILING else "added"
    if new is None:
        return "removed"
    if new in FAILING:
        return "still_failing" if old in FAILING else "new_failure"
    return "no_longer_failing" if old in FAILING else "changed"


def diff_reports(a: dict[str, Any], b: dict[str, Any]) -> ReportDiff:
    """The changes from report ``a`` to report ``b`` (both as :func:`~loss_conformance.report.read.load_report`
    returns them), sorted by kind and then by key."""
    old = {record_key(r): r for r in a["records"]}
    new = {record_key(r): r for r in b["records"]}
    changes, unchanged, unstable = [], 0, 0
    for key in list(old) + [k for k in new if k not in old]:
        before, after = old.get(key), new.get(key)
        status_a = before["status"] if before else None
        status_b = after["status"] if after else None
        kind = classify(status_a, status_b)
        if kind is None:
            unchanged += 1
            continue
        if _by_chance(before, after):
            unstable += 1
            continue
        message, seed = (after.get("message"), after.get("seed")) if after else (None, None)
        changes.append(Change(key, kind, status_a, status_b, message=message if isinstance(message, str) else "",
                              seed=seed if isinstance(seed, int) else None))
    changes.sort(key=lambda c: (KINDS.index(c.kind), c.key))
    return ReportDiff(changes, unchanged, _context(a, b), unstable)


_NOT_FAILING_BY_CHANCE = frozenset({"pass", "known_deviation"})


def _by_chance(before: dict[str, Any] | None, after: dict[str, Any] | None) -> bool:
    """True for a change between pass and known_deviation where either record names an unstable
    deviation: a kernel that returns uninitialised memory is sometimes right by chance."""
    if before is None or after is None or {before["status"], after["status"]} - _NOT_FAILING_BY_CHANCE:
        return False
    return any(isinstance(r.get("deviation"), dict) and r["deviation"].get("unstable") is True for r in (before, after))


def _context(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    out = []
    for name in _VERSIONS:
        va, vb = _field(a, "versions", name), _field(b, "versions", name)
        if va != vb:
            out.append((name, va, vb))
    for name in _OPTIONS:
        va, vb = _field(a, "run", name), _field(b, "run", name)
        if va != vb:
            out.append((name, va, vb))
    return out


def _field(report: dict[str, Any], section: str, name: str) -> Any:
    part = report.get(section)
    return part.get(name) if isinstance(part, dict) else None


def warnings(a: dict[str, Any], b: dict[str, Any], a_name: str, b_name: str) -> list[str]:
    """One line per incomplete report: its missing checks show as removed or added."""
    out = []
    for report, name, shows in ((a, a_name, "added"), (b, b_name, "removed")):
        if not is_complete(report):
            why = f", interrupted by {report['interrupted']}" if isinstance(report.get("interrupted"), str) else ""
            out.append(f"{escape_control(name)} is an incomplete run (\"complete\": false{escape_control(why)}): "
                       f"the checks it did not reach show as {shows}")
    return out


def _show(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, dict) and set(value) >= {"index", "count"}:
        return f"{value['index']}/{value['count']}"  # a shard
    if isinstance(value, list):
        return " ".join(map(str, value)) or "(none)"
    return str(value)


def render_diff(diff: ReportDiff, a_name: str, b_name: str) -> str:
    """The readable form: context, one section per kind of change, then the counts."""
    lines = [f"A: {escape_control(a_name)}", f"B: {escape_control(b_name)}"]
    for what, va, vb in diff.context:
        lines.append(escape_control(f"  {what} differs: {clip(_show(va), 200)} (A) -> {clip(_show(vb), 200)} (B)"))
    rows = [tuple(escape_control(v) for v in c.key) for c in diff.changes]
    widths = [max(len(row[i]) for row in rows + [KEY_FIELDS]) for i in range(len(KEY_FIELDS))]
    if rows:
        lines += ["", _row(KEY_FIELDS, widths, "status in A -> in B")]
    for kind in KINDS:
        items = [(c, row) for c, row in zip(diff.changes, rows) if c.kind == kind]
        if items:
            lines += ["", f"{TITLES[kind]} ({len(items)}):"]
        for change, row in items:
            lines.append(_row(row, widths, f"{change.old or '-'} -> {change.new or '-'}"))
            if kind == "new_failure" and (change.message or change.seed is not None):
                seed = f"seed {change.seed}: " if change.seed is not None else ""
                text = escape_control(seed + clip(change.message.strip(), 600))
                lines += ["      " + line for line in text.split("\n")[:6]]
    counts = diff.counts()
    said = ", ".join(f"{_SHORT[k]} {counts[k]}" for k in KINDS if counts[k])
    lines += ["", f"{len(diff.changes)} changes" + (f" ({said})" if said else "") + f", {diff.unchanged} unchanged"]
    if diff.unstable:
        lines.append(f"{diff.unstable} left out: between pass and a known deviation declared unstable "
                     "(uninitialised memory), where either is chance")
    news = len(diff.new_failures)
    lines.append(f"diff: {news} new failure{'s' if news != 1 else ''} in B (exit status {diff.exit_status()})")
    return "\n".join(lines)


def _row(cells: tuple[str, ...], widths: list[int], statuses: str) -> str:
    return "  " + "  ".join(cell.ljust(w) for cell, w in zip(cells, widths)) + "  " + statuses


def diff_json(diff: ReportDiff, a: dict[str, Any], b: dict[str, Any], a_name: str, b_name: str) -> dict[str, Any]:
    """The changes for tools: versioned like the run report."""
    return {
        "format": DIFF_FORMAT,
        "version": DIFF_VERSION,
        "a": {"path": a_name, "complete": is_complete(a)},
        "b": {"path": b_name, "complete": is_complete(b)},
        "context": [{"field": what, "a": va, "b": vb} for what, va, vb in diff.context],
        "counts": diff.counts(),
        "unchanged": diff.unchanged,
        "unstable": diff.unstable,
        "new_failures": len(diff.new_failures),
        "changes": [c.as_dict() for c in diff.changes],
    }
