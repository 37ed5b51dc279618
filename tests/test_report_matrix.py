"""loss-conformance report RUN.json --format markdown|html: the conformance matrix a project publishes."""
from __future__ import annotations

import html.parser
import re

import pytest

from loss_conformance.cli import main
from loss_conformance.report.json_report import build_report, write_json
from tests.report_fixtures import NASTY, RUN, TIMINGS, failing, record


def _report(tmp_path, records):
    path = tmp_path / "run.json"
    write_json(build_report(records, TIMINGS, RUN, complete=True), path)
    return path


RECORDS = [record("pass", reduction="mean", dtype="float32"), record("pass", check="backward", dtype="float32"),
           failing("fail", reduction="sum", dtype="float32"), record("known_deviation", reduction="mean", dtype="float64"),
           record("skipped", check="gradcheck", reduction="mean", dtype="float64"),
           record("pass", loss="mse_loss", reduction="none", dtype="float64")]


def test_the_markdown_matrix_has_a_cell_per_loss_reduction_and_dtype(tmp_path, capsys):
    assert main(["report", str(_report(tmp_path, RECORDS))]) == 0
    text = capsys.readouterr().out
    assert "| loss | reduction | float32 | float64 |" in text
    assert "| l1_loss | mean | ✓ pass | ✓\\* known deviation |" in text  # the skipped gradcheck is no verdict
    assert "| l1_loss | sum | ✗ FAIL |  |" in text
    assert "| mse_loss | none |  | ✓ pass |" in text
    assert "- FAIL: l1_loss forward reduction=sum dtype=float32 device=cpu: fail: output values differ" in text


class _Collect(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_a_backends_message_carries_no_markup_into_the_page(tmp_path, fmt):
    hostile = failing("fail", message="<script>alert(1)</script> | *bold* [x](javascript:1)\n" + NASTY,
                      backend="<img src=x onerror=alert(1)>")
    out = tmp_path / f"matrix.{fmt}"
    assert main(["report", str(_report(tmp_path, [hostile])), "--format", fmt, "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert not re.search(r"(?<!\\)<(script|img)", text)  # escaped (\<script\> in Markdown), never raw
    if fmt == "html":
        parsed = _Collect()
        parsed.feed(text)
        assert "script" not in parsed.tags and "img" not in parsed.tags
        assert "<script>alert(1)</script>" in "".join(parsed.text)  # shown, as text
    else:
        assert "\\<script\\>" in text and "\\| \\*bold\\* \\[x\\]" in text


def test_an_unreadable_report_is_a_usage_error_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    out = tmp_path / "matrix.md"
    assert main(["report", str(bad), "--out", str(out)]) == 2
    assert not out.exists() and "loss-conformance: error:" in capsys.readouterr().err
