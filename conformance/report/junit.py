"""JUnit XML for CI dashboards: a testsuite per backend and loss, a testcase per check."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from itertools import groupby
from pathlib import Path
from typing import Iterable

from conformance.records import Record


def write_junit(records: Iterable[Record], path: str | Path) -> None:
    root = ET.Element("testsuites", name="loss-conformance")
    ordered = sorted(records, key=lambda r: (r.backend, r.loss))
    for (backend, loss), group in groupby(ordered, key=lambda r: (r.backend, r.loss)):
        items = list(group)
        suite = ET.SubElement(root, "testsuite", name=f"{backend}.{loss}", tests=str(len(items)),
                              failures=str(sum(r.status == "fail" for r in items)),
                              errors=str(sum(r.status == "error" for r in items)),
                              skipped=str(sum(r.status in ("skipped", "not_implemented") for r in items)),
                              time=f"{sum(r.seconds for r in items):.3f}")
        for r in items:
            case = ET.SubElement(suite, "testcase", classname=f"{backend}.{loss}",
                                 name=f"{r.check}[{r.reduction}-{r.dtype}-{r.device}]", time=f"{r.seconds:.3f}")
            if r.status in ("fail", "error"):
                element = ET.SubElement(case, "failure" if r.status == "fail" else "error",
                                        message=r.message.splitlines()[0][:500] if r.message else r.status)
                element.text = "\n\n".join(filter(None, [r.message, r.reproduce]))
            elif r.status in ("skipped", "not_implemented"):
                ET.SubElement(case, "skipped", message=r.message or r.status)
            elif r.message:
                ET.SubElement(case, "system-out").text = f"{r.status}: {r.message}"
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
