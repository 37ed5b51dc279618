"""The JSON report. Field names are a contract with other tools: add, never rename; bump the
version when a field changes meaning."""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from conformance import __version__
from conformance.records import STATUSES, Record

REPORT_FORMAT = "loss-conformance-report"
REPORT_VERSION = 1


def build_report(records: Iterable[Record], timings: dict[str, float], run: dict[str, Any]) -> dict[str, Any]:
    records = list(records)
    counts = Counter(r.status for r in records)
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "tool_version": __version__,
        "run": run,
        "summary": {status: counts.get(status, 0) for status in STATUSES},
        "timings": timings,
        "records": [r.as_dict() for r in records],
    }


def write_json(report: dict[str, Any], path: str | Path) -> None:
    """Strict JSON: non-finite floats (a counterexample may hold them) become "nan", "inf", "-inf"."""
    Path(path).write_text(json.dumps(_finite(report), indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
