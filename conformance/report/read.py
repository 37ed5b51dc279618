"""Reading a JSON run report back (for ``diff`` and ``merge``): checked before anything is printed.

A report comes from a file anyone may hand over: every way it can be wrong is one
:class:`ReportInputError` whose message names the file, never a traceback.
"""
from __future__ import annotations

import json
import os
from typing import Any

from loss_conformance.records import Record
from loss_conformance.report.json_report import REPORT_FORMAT, REPORT_VERSION
from loss_conformance.report.text import clip, escape_control

# What identifies a record across runs: one backend's check of one loss, reduction, dtype and device.
KEY_FIELDS = ("backend", "loss", "check", "reduction", "dtype", "device")
RecordKey = tuple[str, str, str, str, str, str]

# The other fields of a Record, with the types a report holds them as.
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "examples": int, "seconds": (int, float), "finished_at_s": (int, float), "message": str, "seed": int,
    "counterexample": dict, "reproduce": str, "standalone": str, "deviation": dict, "detail": dict}


class ReportInputError(ValueError):
    """A report that cannot be read or is not a usable run report (a usage error: exit status 2)."""


def record_key(record: dict[str, Any]) -> RecordKey:
    return tuple(record[f] for f in KEY_FIELDS)  # type: ignore[return-value]


def key_label(key: RecordKey) -> str:
    backend, loss, check, reduction, dtype, device = key
    return escape_control(f"{backend} {loss} {check} reduction={reduction} dtype={dtype} device={device}")


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The report at ``path``, checked: its format and version, and records that each carry their
    key fields and a status, no two with the same key."""
    name = escape_control(os.fspath(path))
    try:
        with open(path, "rb") as handle:
            text = handle.read()
    except FileNotFoundError:
        raise ReportInputError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise ReportInputError(f"{name}: is a directory, not a report") from None
    except OSError as exc:
        raise ReportInputError(f"{name}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ReportInputError(f"{name}: not JSON ({clip(escape_control(exc), 200)})") from None
    if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
        raise ReportInputError(f'{name}: not a loss-conformance report (it lacks "format": "{REPORT_FORMAT}")')
    version = data.get("version")
    if type(version) is not int or version != REPORT_VERSION:
        raise ReportInputError(f"{name}: report version {clip(escape_control(repr(version)), 40)} is unknown to this "
                               f"loss-conformance, which reads version {REPORT_VERSION}")
    if not isinstance(data.get("run", {}), dict):
        raise ReportInputError(f'{name}: its "run" is not an object')
    records = data.get("records")
    if not isinstance(records, list):
        raise ReportInputError(f'{name}: it has no "records" list')
    seen: dict[RecordKey, int] = {}
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ReportInputError(f"{name}: record {i} is not an object")
        lacking = [f for f in KEY_FIELDS + ("status",) if not isinstance(record.get(f), str)]
        if lacking:
            raise ReportInputError(f"{name}: record {i} has no {', '.join(lacking)} (a string each)")
        key = record_key(record)
        if key in seen:
            raise ReportInputError(f"{name}: records {seen[key]} and {i} are both {key_label(key)}")
        seen[key] = i
    return data


def is_complete(report: dict[str, Any]) -> bool:
    # Reports written before "complete" existed were written only at the end of a run.
    return report.get("complete", True) is not False


def string_list(value: Any) -> list[str]:
    """The strings of a list read from a report; anything else (a field of the wrong type) is no strings."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def as_record(record: dict[str, Any]) -> Record:
    """A checked record dict as a :class:`Record` (for the summary table and the verdict). A field a
    later version may add is left out, and one of the wrong type is dropped rather than trusted."""
    fields = {k: v for k, v in record.items()
              if k in KEY_FIELDS + ("status",) or (k in _OPTIONAL and isinstance(v, _OPTIONAL[k]))}
    return Record(**fields)
