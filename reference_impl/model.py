"""The in-memory form of a spec file: plain frozen dataclasses, formulas already compiled."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loss_conformance_reference.formula import Formula
from loss_conformance_reference.formula.scan import Scan

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class LargeSize:
    """A dim's sizes in the ``large`` check: a range (a class count of 32768 and more), a rank range
    for a variadic group, or ``fill``: whatever size brings the largest input to the check's
    element target (2^24 and more)."""

    min: int | None = None
    max: int | None = None
    rank: tuple[int, int] | None = None
    fill: bool = False


@dataclass(frozen=True)
class Dim:
    name: str
    min: int
    max: int
    rank: tuple[int, int] | None = None  # set for a variadic group, written *name in shapes
    large: LargeSize | None = None  # sizes in the large check; its ordinary range when None

    @property
    def variadic(self) -> bool:
        return self.rank is not None


@dataclass(frozen=True)
class RangeDomain:
    """A float domain declared in the spec itself: [low, high], special values, an interior."""

    low: float
    high: float
    special: tuple[float, ...] = ()
    interior: tuple[float, float] | None = None


@dataclass(frozen=True)
class InputSpec:
    name: str
    domain: str | RangeDomain = "real"
    differentiable: bool = False
    optional: bool = False
    default: Formula | None = None
    shape: tuple[str, ...] | None = None
    same_shape_as: str | None = None
    broadcast_to: str | None = None
    ties_with: str | None = None
    classes: str | None = None
    special: tuple[str, ...] = ()
    terminator: int | None = None  # index rows are read up to the first element equal to this
    zero_vectors: bool = False  # strategies sometimes zero whole vectors along the last axis
    row_gaps: tuple[float, ...] = ()  # strategies sometimes set elements to a row neighbour minus a gap

    exclude: tuple[str, ...] = ()  # index input: never the values of these parameters
    bound: str | None = None  # length input: at most this dim
    min: int = 0  # length input: at least this
    derive: Formula | None = None  # computed from the other drawn inputs instead of drawn itself
    internal: bool = False  # drawn only to derive others; never passed to a backend

    @property
    def is_index(self) -> bool:
        return self.domain in ("class_index", "length")


@dataclass(frozen=True)
class ParamDomain:
    kind: str  # choice | int | float | bool | callable (choices: names in the harness's callable registry)
    choices: tuple[Any, ...] = ()
    low: Formula | None = None
    high: Formula | None = None


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    values: tuple[Any, ...] = ()
    domain: tuple[ParamDomain, ...] = ()


@dataclass(frozen=True)
class Layout:
    name: str
    shapes: dict[str, tuple[str, ...]]
    unbatched: dict[str, int] = field(default_factory=dict)  # input -> axis of the batch dim it lacks


@dataclass(frozen=True)
class Kink:
    """A point where the loss is not differentiable: binding ``of`` has a kink where ``at`` is 0,
    and any derivative of ``of`` with respect to ``at`` in [low, high] is a valid one there (a
    hinge max(0, z): [0, 1]; |z|: [-1, 1])."""

    name: str
    of: str
    at: Formula
    low: float
    high: float


@dataclass(frozen=True)
class Variant:
    name: str
    inputs: dict[str, InputSpec]
    params: tuple[str, ...]
    layouts: tuple[Layout, ...]
    bindings: tuple[tuple[str, Formula | Scan], ...]
    reductions: dict[str, Formula]
    magnitude: dict[str, Formula] = field(default_factory=dict)
    # The size of the terms each gradient element sums, per unit of incoming gradient, where they
    # cancel (a cosine's x2 / (|x1| |x2|) - cos x1 / |x1|^2): a gradient's atol scales with it.
    gradient_magnitude: dict[str, Formula] = field(default_factory=dict)
    kinks: tuple[Kink, ...] = ()

    @property
    def differentiable(self) -> tuple[str, ...]:
        return tuple(name for name, spec in self.inputs.items() if spec.differentiable)


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float


@dataclass(frozen=True)
class Property:
    name: str
    holds: Formula
    when: Formula | None = None
    substitute: dict[str, Formula] = field(default_factory=dict)
    variants: tuple[str, ...] = ()


@dataclass(frozen=True)
class Example:
    name: str
    inputs: dict[str, Any]
    expected: Any
    variant: str
    params: dict[str, Any] = field(default_factory=dict)
    prepare: dict[str, Formula] = field(default_factory=dict)
    dtype: str = "float64"
    decimals: int | None = None
    input_decimals: int | None = None
    source: str = ""
    # The gradient of the output summed, per input: (low, high) arrays, equal where it is unique;
    # a kink's element may be anything between them.
    gradients: dict[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Origin:
    """Where a field was written: errors found at run time (a failing ``when``) point there."""

    path: str
    line: int | None
    field: str


@dataclass(frozen=True)
class Deviation:
    backends: tuple[str, ...]
    checks: tuple[str, ...]
    reason: str
    reference: str
    when: Formula | None = None
    origin: Origin | None = field(default=None, compare=False)  # of ``when``: file, line, field
    dtypes: tuple[str, ...] = ()  # the dtypes it applies to; every dtype when empty
    torch: str = ""  # the torch versions it applies to (a PEP 440 specifier); every version when empty
    # It depends on uninitialised memory: holding or not is chance, so it is never reported as
    # no longer occurring and is left out of diffs.
    unstable: bool = False
    # Granted by --inherit-torch-deviations from torch's own entry (a compiled or ported torch
    # function behaves as torch does): not the backend's own claim, so never "no longer occurs".
    inherited: bool = False
    # A tolerance the backend is held to instead of the spec's (values and gradients): the entry
    # covers a comparison that fails at the spec's tolerance and passes at this one, nothing else.
    tolerance: Tolerance | None = None
    # The kinds of failure it covers (``failures:``); empty: DEFAULT_FAILURES.
    failures: tuple[str, ...] = ()


# The kinds of failure a known deviation can cover, as a check reports them: ``values`` (outputs,
# gradients or tangents that differ), ``raises`` (the backend or its backward raised), ``property``,
# an output of another ``dtype``, ``shape``, ``device`` or ``type`` (not a tensor), ``no_gradient``
# (the output carries none), ``nondeterministic``, ``crashed``, ``timeout``, and ``other``.
FAILURE_KINDS = ("values", "raises", "property", "dtype", "shape", "device", "type", "no_gradient",
                 "nondeterministic", "crashed", "timeout", "other")
# What an entry that names no kinds covers: other numbers, or a refusal, never a result of another
# dtype, shape, device or type: a backend's wrong dtype on inputs where torch overflows is news.
DEFAULT_FAILURES = ("values", "raises", "property", "nondeterministic", "crashed", "timeout")


@dataclass(frozen=True)
class ModuleCall:
    name: str
    init: tuple[str, ...] = ()
    forward: tuple[str, ...] = ()


@dataclass(frozen=True)
class Gradient:
    convention: str = ""
    double_backward: bool = False
    smooth_when: Formula | None = None


@dataclass(frozen=True)
class LossSpec:
    id: str
    title: str
    summary: str
    latex: str
    path: Path
    module: ModuleCall
    args: tuple[str, ...]
    keywords: tuple[str, ...]
    dims: dict[str, Dim]
    params: dict[str, ParamSpec]
    variants: tuple[Variant, ...]
    gradient: Gradient
    tolerance: dict[str, Tolerance]
    grad_tolerance: dict[str, Tolerance]
    properties: tuple[Property, ...] = ()
    examples: tuple[Example, ...] = ()
    deviations: tuple[Deviation, ...] = ()
    symbols: tuple[dict[str, str], ...] = ()

    @property
    def reductions(self) -> tuple[str, ...]:
        reduction = self.params.get("reduction")
        return tuple(reduction.values) if reduction else ("none",)

    @property
    def dtypes(self) -> tuple[str, ...]:
        return tuple(d for d in FLOAT_DTYPES if d in self.tolerance)

    def variant(self, name: str) -> Variant:
        for variant in self.variants:
            if variant.name == name:
                return variant
        raise KeyError(f"{self.id} has no variant '{name}'")
