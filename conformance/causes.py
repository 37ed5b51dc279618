"""What tells two failures of one check apart, so that a search can go on past the first one and
report each distinct cause once (``--counterexamples``).

A failure's cause is its kind, read from the check's message (the backend raised, the output's
dtype or shape, a property, values or a gradient that differ, and then by how much: non-finite,
large, small), and the options that the failing case set away from their defaults. A later
failure is the same cause as an earlier one when its kind is the same and it sets at least the
options the earlier one set, to any values: a shrunk counterexample keeps an option away from its
default only where the failure needs it there, so a failure that needs more options is another
cause only if its kind differs too. So a mild epsilon difference at the default ``p`` and a wrong
value at ``p = 1`` are two causes; a wrong mean with and without a margin set is one, and so is a
delta ignored at 0.5 and at 1.5.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from loss_conformance.checks import NondeterminismFound
from loss_conformance.workers import WorkerLost
from loss_conformance_reference.model import LossSpec

# torch.testing's wording: "Greatest relative difference: 6.0 at index (0,)" or, for scalars,
# "Relative difference: 0.00057".
_RELATIVE = re.compile(r"[Rr]elative difference: (\S+?)[\s;(]")
_RAISED = re.compile(r"raised (\w+)")
_PROPERTY = re.compile(r"^property '([^']+)'")
_VALUES = re.compile(r"^((?:gradient of \S+ |output )?values differ)")
_ACTUAL = re.compile(r"actual=(.*?) expected=")
_NON_FINITE = re.compile(r"\b(nan|inf)\b")
LARGE = 1e-2  # a relative difference from here on is no rounding: a different formula


@dataclass(frozen=True)
class Cause:
    kind: str
    options: frozenset[str]  # the options set away from their defaults
    values: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # as the counterexample set them

    def covers(self, other: "Cause") -> bool:
        """Whether ``other`` is this cause again: the same kind, with at least this one's options set
        (to any value)."""
        return self.kind == other.kind and self.options <= other.options

    def __str__(self) -> str:
        options = ", ".join(f"{name}={value}" for name, value in self.values)
        return f"{self.kind}{f' ({options})' if options else ''}"


def cause_of(message: str, params: Mapping[str, Any], spec: LossSpec) -> Cause:
    """The cause of a failure with ``message`` on a case with ``params``."""
    values = tuple(sorted((name, repr(value)) for name, value in params.items()
                          if name in spec.params and not _is_default(value, spec.params[name].default)))
    return Cause(_kind(message), frozenset(name for name, _ in values), values)


def known(cause: Cause, found: list[Cause]) -> bool:
    return any(earlier.covers(cause) for earlier in found)


# A failure's kind for a known deviation's ``failures`` (loss_conformance_reference.model.FAILURE_KINDS),
# from the first line of the check's message, in this order.
_FAILURE_KINDS = (
    ("property", re.compile(r"^property '")),
    ("values", re.compile(r"\bvalues differ\b|\bJacobian mismatch\b")),
    ("dtype", re.compile(r"\bdtype \S+ != expected ")),
    ("shape", re.compile(r"\bshape \(.*\) != expected ")),
    ("device", re.compile(r"\bon device \S+ != expected ")),
    ("type", re.compile(r"\bnot a torch\.Tensor\b|\bgave a \w+")),
    ("no_gradient", re.compile(r"\bcarries no gradient\b")),
    ("raises", re.compile(r"\braised\b|^(?:grad)?gradcheck failed: ")),
)


def failure_kind(message: str) -> str:
    """What kind of failure a check's ``message`` reports: ``values``, ``dtype``, ``raises`` ..."""
    first = _first_line(message)
    return next((kind for kind, pattern in _FAILURE_KINDS if pattern.search(first)), "other")


def failure_kind_of(exc: BaseException) -> str:
    """The kind of a check's failure ``exc``: nondeterminism and a lost worker by their class, the
    others by their message."""
    if isinstance(exc, NondeterminismFound):
        return "nondeterministic"
    if isinstance(exc, WorkerLost):
        return exc.status
    return failure_kind(str(exc))


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else ""


def _kind(message: str) -> str:
    first = _first_line(message)
    if (prop := _PROPERTY.match(first)) is not None:
        return f"property {prop.group(1)}"
    if (values := _VALUES.match(first)) is not None:
        return f"{values.group(1)}: {_size(first)}"
    if first.startswith("backend raised") or first.startswith("backward raised"):
        raised = _RAISED.search(first)
        return f"{first.split()[0]} raised {raised.group(1) if raised else ''}".strip()
    return first.split(":", 1)[0][:80]


def _size(message: str) -> str:
    """How far the values are apart: non-finite (the backend gave NaN or an infinity), large (a
    relative 1e-2 or more, or anything where 0 was expected) or small."""
    actual = _ACTUAL.search(message)
    if actual is not None and _NON_FINITE.search(actual.group(1)):
        return "non-finite"
    found = _RELATIVE.search(message + " ")
    try:
        relative = float(found.group(1).rstrip(".,")) if found is not None else math.nan
    except ValueError:
        relative = math.nan
    if math.isnan(relative):
        return "unmeasured"
    return "large" if relative >= LARGE else "small"


def _is_default(value: Any, default: Any) -> bool:
    try:
        return bool(value == default) or (isinstance(value, float) and isinstance(default, float)
                                          and math.isnan(value) and math.isnan(default))
    except Exception:  # noqa: BLE001 - an option without equality (a callable) is never its default
        return False
