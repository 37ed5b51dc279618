"""JUnit XML for CI dashboards: a testsuite per backend and loss, a testcase per check.

``fail``, ``crashed``, ``timeout`` and ``nondeterministic`` are failures (``<failure type=STATUS>``),
``error`` (the harness's own) is an error, ``skipped``, ``not_implemented`` and ``unsupported`` are
skipped. Every text is escaped (see :mod:`loss_conformance.report.text`): the file is always well-formed
XML 1.0, whatever a backend put in its messages.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import groupby
from pathlib import Path
from typing import Iterable

from loss_conformance.records import Record
from loss_conformance.report.atomic import atomic_write
from loss_conformance.report.details import other_causes, outputs_of
from loss_conformance.report.text import clip, escape_control

FAILURES = frozenset({"fail", "crashed", "timeout", "nondeterministic"})
ERRORS = frozenset({"error"})
SKIPPED = frozenset({"skipped", "not_implemented", "unsupported"})


def _sub(parent: ET.Element, tag: str, **attrib: str) -> ET.Element:
    return ET.SubElement(parent, tag, {k: escape_control(v) for k, v in attrib.items()})


def _text(r: Record) -> str:
    parts = [r.message]
    if r.seed is not None:
        parts.append(f"seed: {r.seed}")
    outputs = outputs_of(r)
    if outputs is not None:
        parts.append(f"first call:  {clip(repr(outputs[0]), 4000)}\nsecond call: {clip(repr(outputs[1]), 4000)}")
    if r.reproduce:
        parts.append("reproduce with:\n" + r.reproduce.rstrip())
    if r.standalone:
        parts.append("the call alone, for a bug report:\n" + r.standalone.rstrip())
    if not r.reproduce and r.counterexample:
        parts.append(f"counterexample: {clip(repr(r.counterexample), 4000)}")
    parts += other_causes(r, 4000)
    return escape_control("\n\n".join(filter(None, parts)))


def junit_xml(records: Iterable[Record]) -> bytes:
    root = ET.Element("testsuites", name="loss-conformance")
    ordered = sorted(records, key=lambda r: (r.backend, r.loss))
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    for (backend, loss), group in groupby(ordered, key=lambda r: (r.backend, r.loss)):
        items = list(group)
        counts = {"tests": len(items), "failures": sum(r.status in FAILURES for r in items),
                  "errors": sum(r.status in ERRORS for r in items),
                  "skipped": sum(r.status in SKIPPED for r in items), "time": sum(r.seconds for r in items)}
        for key, value in counts.items():
            totals[key] += value
        suite = _sub(root, "testsuite", name=f"{backend}.{loss}", tests=str(counts["tests"]),
                     failures=str(counts["failures"]), errors=str(counts["errors"]),
                     skipped=str(counts["skipped"]), time=f"{counts['time']:.3f}")
        for r in items:
            case = _sub(suite, "testcase", classname=f"{backend}.{loss}",
                        name=f"{r.check}[{r.reduction}-{r.dtype}-{r.device}]", time=f"{r.seconds:.3f}")
            if r.status in FAILURES or r.status in ERRORS:
                first = r.message.split("\n", 1)[0][:500] if r.message else r.status
                element = _sub(case, "error" if r.status in ERRORS else "failure", type=r.status,
                               message=f"{r.status}: {first}" if r.status not in ("fail", "error") else first)
                element.text = _text(r)
            elif r.status in SKIPPED:
                _sub(case, "skipped", type=r.status, message=r.message or r.status)
            elif r.message:
                _sub(case, "system-out").text = escape_control(f"{r.status}: {r.message}")
            elif r.status != "pass":  # a status this module does not know: shown, never silently green
                _sub(case, "system-out").text = escape_control(f"status: {r.status}")
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(totals[key]))
    root.set("time", f"{totals['time']:.3f}")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def write_junit(records: Iterable[Record], path: str | Path) -> None:
    atomic_write(path, junit_xml(records))
