"""Facts of a record that several reports show."""
from __future__ import annotations

from typing import Any

from loss_conformance.records import Record
from loss_conformance.report.text import clip

# Where a nondeterministic record may keep its two results: Record.detail["outputs"] = [first, second]
# is the documented place; the other spellings are read too, in detail and in the counterexample.
_PAIRS = (("first", "second"), ("first_output", "second_output"), ("output_1", "output_2"))


def outputs_of(record: Record) -> tuple[Any, Any] | None:
    """The two disagreeing results of a nondeterministic record, when it carries them."""
    if record.status != "nondeterministic":
        return None
    for source in (record.detail, record.counterexample):
        if not isinstance(source, dict):
            continue
        outputs = source.get("outputs")
        if isinstance(outputs, (list, tuple)) and len(outputs) == 2:
            return outputs[0], outputs[1]
        for a, b in _PAIRS:
            if a in source and b in source:
                return source[a], source[b]
    return None


def other_causes(record: Record, limit: int) -> list[str]:
    """The failures of other causes that the check found after its first (``--counterexamples``),
    each as its cause, its message and its counterexample, values clipped to ``limit`` characters."""
    found = (record.detail or {}).get("other_causes") if isinstance(record.detail, dict) else None
    if not isinstance(found, list):
        return []
    return [f"another cause in this check: {other.get('cause', '')}\n{other.get('message', '')}\n"
            f"counterexample: {clip(repr(other.get('counterexample')), limit)}"
            for other in found if isinstance(other, dict)]
