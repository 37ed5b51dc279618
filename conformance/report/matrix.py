"""The conformance matrix a project publishes: ``loss-conformance report RUN.json --format markdown|html``.

One table per backend: a row per loss and reduction, a column per dtype (and device, where the run
had several), each cell the verdict of its checks (the worst status, as the terminal summary's
rows), then what did not conform, one line each. Everything a backend could influence (names,
messages) is escaped for the format: a report is read from a file, and a page built from it must
not carry markup or script from an exception message.
"""
from __future__ import annotations

import html
from collections import Counter, defaultdict
from typing import Any, Callable

from loss_conformance.records import FAILING, Record
from loss_conformance.report.read import as_record
from loss_conformance.report.terminal import LABELS, _rank, _verdict

FORMATS = ("markdown", "html")
_MARK = {"pass": "✓", "known_deviation": "✓*", "fail": "✗", "error": "✗", "crashed": "✗", "timeout": "✗",
         "nondeterministic": "✗", "skipped": "–", "unsupported": "–", "not_implemented": "–"}


def render_matrix(report: dict[str, Any], fmt: str) -> str:
    """The matrix of ``report`` (read and checked by ``read.load_report``) in ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format '{fmt}' (one of {', '.join(FORMATS)})")
    records = [as_record(r) for r in report.get("records", [])]
    run = report.get("run") or {}
    versions = report.get("versions") or {}
    title = "Loss conformance"
    facts = [f"torch {versions.get('torch') or run.get('torch_version', '?')}", f"seed {run.get('seed', '?')}",
             f"profile {run.get('profile', '?')}", f"{len(records)} checks"]
    if report.get("complete") is False:
        facts.append("INCOMPLETE run")
    by_backend: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_backend[r.backend].append(r)
    writer = _Markdown() if fmt == "markdown" else _Html()
    parts = [writer.heading(1, title), writer.paragraph(", ".join(facts)), writer.paragraph(_legend())]
    for backend, items in by_backend.items():
        parts += _backend_section(writer, backend, items)
    return writer.document(title, parts)


def _legend() -> str:
    return ("✓ conforms, ✓* conforms with a known deviation, ✗ does not conform (fail, error, crashed, "
            "timeout, nondeterministic), – not checked (skipped, unsupported, not implemented)")


def _backend_section(writer: "_Writer", backend: str, records: list[Record]) -> list[str]:
    multi_device = len({r.device for r in records}) > 1
    column: Callable[[Record], str] = (lambda r: f"{r.dtype} {r.device}") if multi_device else (lambda r: r.dtype)
    columns = list(dict.fromkeys(column(r) for r in records))
    cells: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in records:
        cells[(r.loss, r.reduction)][column(r)].append(r.status)
    rows = [[loss, reduction, *(_cell(by_column.get(c, [])) for c in columns)]
            for (loss, reduction), by_column in cells.items()]
    counts = Counter(r.status for r in records)
    summary = ", ".join(f"{n} {LABELS.get(s, s)}" for s, n in sorted(counts.items(), key=lambda kv: _rank(kv[0])))
    parts = [writer.heading(2, backend), writer.paragraph(summary),
             writer.table(["loss", "reduction", *columns], rows)]
    failing = sorted((r for r in records if r.status in FAILING), key=lambda r: (_rank(r.status), r.loss))
    if failing:
        parts.append(writer.heading(3, "Not conforming"))
        parts.append(writer.items([f"{LABELS.get(r.status, r.status)}: {r.loss} {r.check} reduction={r.reduction} "
                                   f"dtype={r.dtype} device={r.device}: {_first_line(r.message)}" for r in failing]))
    return parts


def _cell(statuses: list[str]) -> str:
    if not statuses:
        return ""
    verdict = _verdict(statuses)
    return f"{_MARK.get(verdict, '?')} {LABELS.get(verdict, verdict)}"


def _first_line(message: str) -> str:
    line = (message or "").strip().split("\n", 1)[0]
    return line if len(line) <= 200 else line[:197] + "..."


class _Writer:
    def heading(self, level: int, text: str) -> str: ...
    def paragraph(self, text: str) -> str: ...
    def table(self, header: list[str], rows: list[list[str]]) -> str: ...
    def items(self, lines: list[str]) -> str: ...
    def document(self, title: str, parts: list[str]) -> str: ...


class _Markdown(_Writer):
    @staticmethod
    def _text(text: str) -> str:
        # Markup characters and line breaks of a backend's message become plain text in a cell or item.
        out = " ".join(str(text).split())
        for ch in "\\`*[]<>|#":  # not _: GitHub takes it literally inside a word (kl_div)
            out = out.replace(ch, "\\" + ch)
        return out

    def heading(self, level: int, text: str) -> str:
        return f"{'#' * level} {self._text(text)}\n"

    def paragraph(self, text: str) -> str:
        return self._text(text) + "\n"

    def table(self, header: list[str], rows: list[list[str]]) -> str:
        lines = ["| " + " | ".join(self._text(h) for h in header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(self._text(c) for c in row) + " |" for row in rows]
        return "\n".join(lines) + "\n"

    def items(self, lines: list[str]) -> str:
        return "\n".join(f"- {self._text(line)}" for line in lines) + "\n"

    def document(self, title: str, parts: list[str]) -> str:
        return "\n".join(parts)


class _Html(_Writer):
    _CLASS = {"✓": "ok", "✓*": "known", "✗": "bad", "–": "none"}

    def heading(self, level: int, text: str) -> str:
        return f"<h{level}>{html.escape(text)}</h{level}>"

    def paragraph(self, text: str) -> str:
        return f"<p>{html.escape(text)}</p>"

    def table(self, header: list[str], rows: list[list[str]]) -> str:
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(self._td(c) for c in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def _td(self, cell: str) -> str:
        css = self._CLASS.get(cell.split(" ", 1)[0], "")
        return f'<td class="{css}">{html.escape(cell)}</td>' if css else f"<td>{html.escape(cell)}</td>"

    def items(self, lines: list[str]) -> str:
        return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>"

    def document(self, title: str, parts: list[str]) -> str:
        style = ("body{font-family:sans-serif}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
                 "padding:2px 6px}.ok{background:#dfd}.known{background:#ffd}.bad{background:#fdd}.none{color:#888}")
        return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
                f"<style>{style}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
