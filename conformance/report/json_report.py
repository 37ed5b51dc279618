"""The JSON report. Field names are a contract with other tools: add, never rename; bump the
version when a field changes meaning.

Version 1 fields: ``format``, ``version``, ``tool_version``, ``run``, ``summary``, ``timings``,
``records``. Added since, without a version bump (readers of version 1 ignore them):
``complete`` (false while the run is in progress and for an interrupted run), ``interrupted``
(the signal's name, only in a report that a signal cut short), ``versions`` (Python, the tool,
torch, hypothesis and numpy of the run), ``timings.wall_s`` (elapsed time; ``total_s`` is process
time, summed over the processes of ``--jobs``), records' ``detail``, and the statuses ``unsupported``,
``crashed``, ``timeout``, ``nondeterministic`` in ``summary`` and ``records``.
"""
from __future__ import annotations

import importlib.metadata
import json
import math
import platform
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from loss_conformance import __version__
from loss_conformance.records import STATUSES, Record
from loss_conformance.report.atomic import atomic_write

REPORT_FORMAT = "loss-conformance-report"
REPORT_VERSION = 1

# The packages whose versions decide a run's outcome, by their import names.
_VERSIONED = ("torch", "hypothesis", "numpy")


def _package_version(name: str) -> str | None:
    module = sys.modules.get(name)
    version = getattr(module, "__version__", None) if module is not None else None
    if version is not None:
        return str(version)  # torch's is a str subclass; its local part (+cpu, +cu121) is kept
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def environment_versions() -> dict[str, str | None]:
    """The versions that produced a run: Python, this tool, torch, hypothesis, numpy (None: not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version(), "loss_conformance": __version__}
    versions.update({name: _package_version(name) for name in _VERSIONED})
    return versions


def summary_counts(records: Iterable[Record]) -> dict[str, int]:
    """Every status of STATUSES, zero included, then any other status a record carries (none should)."""
    counts = Counter(r.status for r in records)
    summary = {status: counts.pop(status, 0) for status in STATUSES}
    summary.update(sorted(counts.items()))
    return summary


def report_head(records: Iterable[Record], timings: dict[str, float], run: dict[str, Any], *, complete: bool,
                interrupted: str | None = None, versions: dict[str, str | None] | None = None) -> dict[str, Any]:
    """Everything of the report but its ``records``."""
    head: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "tool_version": __version__,
        "complete": complete,
    }
    if interrupted is not None:
        head["interrupted"] = interrupted
    head["run"] = run
    head["versions"] = versions if versions is not None else environment_versions()
    head["summary"] = summary_counts(records)
    head["timings"] = timings
    return head


def build_report(records: Iterable[Record], timings: dict[str, float], run: dict[str, Any], *,
                 complete: bool = True, interrupted: str | None = None,
                 versions: dict[str, str | None] | None = None) -> dict[str, Any]:
    records = list(records)
    report = report_head(records, timings, run, complete=complete, interrupted=interrupted, versions=versions)
    report["records"] = [r.as_dict() for r in records]
    return report


def dumps_record(record: Record) -> str:
    """One record as it appears inside the report's ``records`` list (indented for that place)."""
    return "\n".join("    " + line for line in _dumps(record.as_dict()).splitlines())


def dumps_report(head: dict[str, Any], record_texts: list[str]) -> str:
    """The report's text from its head and its records already serialised by :func:`dumps_record`:
    the same text as ``json.dumps(report, indent=2)``, without serialising every record again."""
    text = _dumps(head)
    body = "[]" if not record_texts else "[\n" + ",\n".join(record_texts) + "\n  ]"
    return (text[:-2] + ",\n" if head else "{\n") + f'  "records": {body}\n}}\n'


def to_json(report: dict[str, Any]) -> str:
    return _dumps(report) + "\n"


def write_json(report: dict[str, Any], path: str | Path) -> None:
    """Strict JSON, written atomically: non-finite floats (a counterexample may hold them) become "nan",
    "inf", "-inf"; every non-ASCII character and control character is a JSON escape."""
    atomic_write(path, to_json(report).encode("ascii"))


def _dumps(value: Any) -> str:
    return json.dumps(_finite(value), indent=2, allow_nan=False, ensure_ascii=True)


def _finite(value: Any) -> Any:
    """A strict-JSON-ready copy: non-finite floats as strings, NumPy/torch scalars and arrays as Python
    values, tuples as lists, keys as strings, anything else unknown as its ``str``."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {_key(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy.float32, numpy arrays, torch tensors
    if callable(tolist):
        try:
            converted = tolist()
        except Exception:  # noqa: BLE001 - a report must be written whatever a value does
            return str(value)
        if converted is not value and not (type(converted) is type(value)):
            return _finite(converted)
    return str(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, float) and not math.isfinite(key):
        return "nan" if math.isnan(key) else ("inf" if key > 0 else "-inf")
    if isinstance(key, (bool, int, float)) or key is None:
        return json.dumps(key)
    return str(key)
