"""The conformance suite as a pytest module: ``pytest --pyargs loss_conformance.pytest_suite``."""
from __future__ import annotations

from typing import Any

import pytest

from loss_conformance.records import FAILING
from loss_conformance.report.details import other_causes


def test_conformance(conformance_check: Any, conformance_runner: Any) -> None:
    unsupported = conformance_runner.unsupported(conformance_check)
    if unsupported:
        pytest.skip(f"unsupported: {unsupported}")
    record = conformance_runner.run_one(conformance_check)
    if record.status in ("skipped", "not_implemented"):
        pytest.skip(f"{record.status}: {record.message}")
    if record.status == "known_deviation":
        pytest.xfail(f"known deviation: {record.message}")
    if record.status in FAILING:
        detail = [record.message]
        if record.reproduce:
            detail += ["", "reproduce with:", record.reproduce]
        for other in other_causes(record, 4000):
            detail += ["", other]
        pytest.fail("\n".join(detail), pytrace=False)
