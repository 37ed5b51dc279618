"""Facts of a record that several reports show."""
from __future__ import annotations

from typing import Any

from loss_conformance.records import Record

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
