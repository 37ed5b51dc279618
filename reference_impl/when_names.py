"""The names a known deviation's ``when`` may read beside the inputs, parameters and dims: the
check's context, how the inputs were passed, and the formula's named values."""
from __future__ import annotations

from typing import Iterable

from loss_conformance_reference.model import Variant

# Names a deviation's ``when`` may use for the check it is applied in: ``dtype`` ('float32', ...)
# and ``device`` ('cpu', 'cuda').
CASE_NAMES = ("dtype", "device")


def binding_names(variants: Iterable[Variant]) -> list[str]:
    """The formula's named values, which a deviation's ``when`` may read too (a name only some
    variants bind applies to their cases)."""
    return sorted({name for v in variants for name, _ in v.bindings})


def layout_names(inputs: list[str]) -> list[str]:
    """Names a deviation's ``when`` may use for how inputs lay in memory: ``layout_target`` is
    ``'contiguous'``, ``'permuted'``, ``'offset'``, ``'strided'``, ``'expanded'`` or
    ``'channels_last'`` (the kinds of ``loss_conformance.layouts``); and for whether an input was passed
    at all: ``passed_weight`` is False where the optional weight was left out; ``cotangent``, the
    incoming gradient of a backward check, and ``tangent_<input>``, the direction of a differentiable
    input in a forward_ad check (a deviation that names them applies to that check only)."""
    return [f"layout_{name}" for name in inputs] + [f"passed_{name}" for name in inputs] + ["cotangent"] + \
        [f"tangent_{name}" for name in inputs]
