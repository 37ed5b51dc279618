"""``loss-conformance merge``: the reports of ``run --shard K/N`` joined into the report of the whole run.

Only shards of one run are joined: the same options (everything in ``run`` but the shard), the same
versions and the same split. What the merged report says is what one unsharded run would have said:
the same records in the same order, the summary counted again, the timings summed (machine time,
not wall time: the shards ran side by side). It is complete only when every shard 1..N is there
and complete; a merge that lacks some is never green (see :func:`merge_verdict`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from loss_conformance.records import Record
from loss_conformance.report.json_report import report_head
from loss_conformance.report.read import (ReportInputError, as_record, is_complete, key_label, record_key,
                                     string_list)
from loss_conformance.report.text import clip, escape_control
from loss_conformance.verdict import EXIT_NOTHING_CHECKED, EXIT_OK, verdict


@dataclass
class MergedRun:
    report: dict[str, Any]
    records: list[Record]
    missing: list[int]  # shards of 1..N not given
    incomplete: list[str]  # inputs that are incomplete runs

    @property
    def complete(self) -> bool:
        return not self.missing and not self.incomplete


def _shard(name: str, report: dict[str, Any]) -> tuple[int, int]:
    shard = report.get("run", {}).get("shard")
    index, count = (shard.get("index"), shard.get("count")) if isinstance(shard, dict) else (None, None)
    if type(index) is not int or type(count) is not int or not 1 <= index <= count:
        raise ReportInputError(f'{escape_control(name)}: not the report of a shard (its run has no "shard"): merge '
                               f"joins the reports of run --shard K/N")
    return index, count


def _same_run(first: tuple[str, dict[str, Any]], other: tuple[str, dict[str, Any]]) -> None:
    """Refuse ``other`` unless it is a shard of the same run as ``first``: options, versions, split."""
    def identity(report: dict[str, Any]) -> dict[str, Any]:
        run = {k: v for k, v in report.get("run", {}).items() if k != "shard"}
        shard = report["run"]["shard"]
        facts = {f"run.{k}": v for k, v in run.items()}
        facts.update({"tool_version": report.get("tool_version"), "shard count": shard.get("count"),
                      "planned checks": shard.get("planned")})
        versions = report.get("versions")
        facts.update({f"versions.{k}": v for k, v in (versions.items() if isinstance(versions, dict) else ())})
        return facts

    (a_name, a), (b_name, b) = first, other
    ia, ib = identity(a), identity(b)
    for what in sorted(set(ia) | set(ib)):
        if ia.get(what) != ib.get(what):
            shown = [clip(escape_control(repr(x.get(what))), 120) for x in (ia, ib)]
            raise ReportInputError(f"{escape_control(b_name)} is not a shard of the same run as "
                                   f"{escape_control(a_name)}: {what} is {shown[1]} there and {shown[0]} here")


def merge_reports(inputs: Sequence[tuple[str, dict[str, Any]]],
                  order: Callable[[dict[str, Any]], Any] | None = None) -> MergedRun:
    """Join shard reports, given as (name, report as ``load_report`` returns it). ``order`` is the
    sort key of the records (:func:`loss_conformance.shards.plan_order`); without it, the input order.
    Raises :class:`ReportInputError` for reports of different runs and for overlapping shards."""
    if not inputs:
        raise ReportInputError("merge needs at least one report")
    given: dict[int, str] = {}
    count = 0
    for name, report in inputs:
        index, count = _shard(name, report)
        _same_run(inputs[0], (name, report))
        if index in given:
            raise ReportInputError(f"shard {index}/{count} is given twice: {escape_control(given[index])} and "
                                   f"{escape_control(name)}")
        given[index] = name
    owner: dict[tuple[str, ...], str] = {}
    records: list[dict[str, Any]] = []
    for name, report in inputs:
        for record in report["records"]:
            key = record_key(record)
            if key in owner:
                raise ReportInputError(f"{escape_control(owner[key])} and {escape_control(name)} both hold "
                                       f"{key_label(key)}: overlapping shards cannot be merged")
            owner[key] = name
            records.append(record)
    if order is not None:
        records.sort(key=order)
    first = inputs[0][1]
    run = {k: v for k, v in first["run"].items() if k != "shard"}
    run["shards"] = {"count": count, "merged": sorted(given)}
    missing = [k for k in range(1, count + 1) if k not in given]
    incomplete = [name for name, report in inputs if not is_complete(report)]
    interrupted = next((r["interrupted"] for _, r in inputs if isinstance(r.get("interrupted"), str)), None)
    as_records = [as_record(r) for r in records]
    report = report_head(as_records, _summed([r.get("timings") for _, r in inputs]), run,
                         complete=not missing and not incomplete, interrupted=interrupted,
                         versions=first.get("versions", {}))
    report["tool_version"] = first.get("tool_version", report["tool_version"])  # the tool that ran the checks
    report["records"] = records
    return MergedRun(report, as_records, missing, incomplete)


def _summed(timings: list[Any]) -> dict[str, float]:
    """Process times summed; ``wall_s`` is the longest shard's, since the shards ran side by side."""
    total: dict[str, float] = {}
    for part in timings:
        for key, value in (part.items() if isinstance(part, dict) else ()):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                joined = max(total.get(key, 0.0), value) if key == "wall_s" else total.get(key, 0.0) + value
                total[key] = round(joined, 4)
    return total


def merge_verdict(merged: MergedRun) -> tuple[int, str]:
    """The run's rule on the merged records (0 all conform, 1 a failing record, 3 nothing checked),
    except that a merge missing a shard, or joining an incomplete one, is never green: what was not
    checked is not known to conform, so it exits 3 when nothing failed."""
    run = merged.report["run"]
    status, reason = verdict(merged.records, str(run.get("backend")), string_list(run.get("dtypes")),
                             string_list(run.get("devices")))
    if status != EXIT_OK or merged.complete:
        return status, reason
    count = run["shards"]["count"]
    lacking = [f"shard {k}/{count} missing" for k in merged.missing] + \
              [f"{escape_control(name)} incomplete" for name in merged.incomplete]
    return EXIT_NOTHING_CHECKED, f"not every check was run ({', '.join(lacking)}); those that were conformed"

