"""Hypothesis strategies built from a spec alone: dims, shapes, values, parameters, variants."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Iterable

import numpy as np
from hypothesis import strategies as st

from loss_conformance.case import Case
from loss_conformance.choices import Choices
from loss_conformance.domains import float32_inside, weighted, weighted_values
from loss_conformance.fill import DRAWN_ELEMENTS, Fill, PooledFill
from loss_conformance.input_arrays import float_array, index_array
from loss_conformance.layouts import draw_layouts
from loss_conformance.precision import PRECISIONS, draw_width, quantize, representable_bounds, storage_dtype
from loss_conformance.profiles import ignore_local_constants
from loss_conformance.shape_buckets import bucketed_dims, dim_range
from loss_conformance.sizes import large_dims_strategy, large_layouts
from loss_conformance_reference.formula import numpy_context
from loss_conformance_reference.model import Dim, InputSpec, Layout, LossSpec, ParamSpec, Variant
from loss_conformance_reference.shapes import concrete_shape

# The cases drawn depend on the seed alone, not on the literals of whatever local modules (the
# user's backend, the current directory) are loaded: see conformance.profiles.
ignore_local_constants()

_OMIT = object()
_CTX = numpy_context()


@lru_cache(maxsize=None)
def size_strategy(low: int, high: int) -> st.SearchStrategy[int]:
    """A size (or a rank) in [low, high], mostly an ordinary one: above the range's minimum and
    at least 2.

    The minimum of a range is its degenerate case (an empty batch, a single class, a scalar, a
    CTC alphabet of the blank and one label), and a wrong normaliser, reduction, broadcast or
    class axis only shows once a dim holds two different things. Hypothesis left to itself
    draws the low end a third of the time and more; here three draws in four take an ordinary
    size (where the range has one) and the fourth any size, so the degenerate sizes still come
    on purpose and shrinking (towards the first choice) still reaches the smallest.
    """
    ordinary_low = max(low + 1, 2)
    if ordinary_low > high:
        return st.integers(low, high)
    return weighted_values((1, range(low, high + 1)), (3, range(ordinary_low, high + 1)))


def dims_strategy(dims: Iterable[Dim], interior: bool = False, bucketed: bool = False) -> st.SearchStrategy[dict[str, Any]]:
    """Sizes for every dim; a variadic group draws a rank, then a size per axis. Interior draws
    avoid empty batches; ``bucketed`` ones take few shapes (``conformance.shape_buckets``)."""
    if bucketed:
        return bucketed_dims(dims, interior)
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for dim in dims:
        sizes = size_strategy(*dim_range(dim, interior))
        if dim.variadic:
            parts[dim.name] = size_strategy(dim.rank[0], dim.rank[1]).flatmap(
                lambda rank, sizes=sizes: _axes(sizes, rank))
        else:
            parts[dim.name] = sizes
    return st.fixed_dictionaries(parts)


@lru_cache(maxsize=None)
def _axes(sizes: st.SearchStrategy[int], rank: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.tuples(*[sizes] * rank)


def _float_bounds(low: float, high: float, dtype: str) -> tuple[float, float]:
    """[low, high] shrunk to the nearest values of ``dtype`` inside it."""
    if dtype == "float64":
        return low, high
    if PRECISIONS[dtype].narrow:
        return representable_bounds(low, high, dtype)
    return float32_inside(low, high)


def param_strategy(param: ParamSpec, dims: dict[str, Any], dtype: str = "float64") -> st.SearchStrategy[Any]:
    """A value from the parameter's domain (or its listed values).

    Float parameters are drawn exactly representable in ``dtype`` (the candidate dtype), so that a
    backend computing in that dtype receives the same margin or eps as the float64 oracle.
    """
    if not param.domain:
        return st.sampled_from(param.values)
    alternatives = []
    for alt in param.domain:
        if alt.kind in ("choice", "bool", "callable"):  # a callable is drawn by name
            alternatives.append(st.sampled_from(alt.choices))
            continue
        low, high = (f.evaluate(dims, _CTX) for f in (alt.low, alt.high))
        if alt.kind == "int":
            if int(low) <= int(high):
                alternatives.append(_with_ends(st.integers(int(low), int(high)), int(low), int(high)))
        else:
            lo, hi = _float_bounds(float(low), float(high), dtype)
            if lo <= hi:
                # No subnormals: an eps of 2e-311 is no option a user passes, and the float64
                # oracle's own squares of it underflow (a norm of 0 where the true one is not).
                floats = st.floats(lo, hi, allow_nan=False, allow_subnormal=False, width=draw_width(dtype))
                if PRECISIONS[dtype].narrow:  # bfloat16: drawn in float32, rounded inside [lo, hi]
                    floats = floats.map(lambda v, d=dtype: float(quantize(v, d)))
                alternatives.append(_with_ends(floats, lo, hi))
    return st.one_of(alternatives)


def _with_ends(values: st.SearchStrategy[Any], low: Any, high: Any) -> st.SearchStrategy[Any]:
    """A parameter range's values, and one time in four one of its two ends: the end of a range is
    the parameter's degenerate case (beta = 0, where smooth L1 turns into L1 and divides by zero;
    a label smoothing of 1; the last class as ignore_index), drawn on purpose."""
    return weighted((3, values), (1, st.sampled_from(sorted({low, high}))))


# An optional parameter is passed two times in three, at a value from its domain, and omitted
# the third (its default, which a backend may get wrong too): most bugs hide behind a value.
_PASSED = weighted_values((1, [False]), (2, [True]))


def _broadcastable_shape(draw: st.DrawFn, shape: tuple[int, ...]) -> tuple[int, ...]:
    keep = draw(st.integers(0, len(shape)))
    tail = shape[len(shape) - keep:]
    return tuple(size if draw(st.booleans()) else 1 for size in tail)


def _input_shape(draw: st.DrawFn, spec: InputSpec, layout: Layout, dims: dict[str, Any],
                 shapes: dict[str, tuple[int, ...]]) -> tuple[int, ...]:
    if spec.name in layout.shapes:
        return concrete_shape(layout.shapes[spec.name], dims)
    if spec.shape is not None:
        return concrete_shape(spec.shape, dims)
    if spec.same_shape_as:
        return shapes[spec.same_shape_as]
    if spec.broadcast_to:
        return _broadcastable_shape(draw, shapes[spec.broadcast_to])
    raise ValueError(f"input '{spec.name}' has no shape in layout '{layout.name}'")


def _ordered(variant: Variant, layout: Layout) -> list[InputSpec]:
    """Inputs in an order where each one's shape source comes first."""
    done: list[InputSpec] = []
    pending = list(variant.inputs.values())
    while pending:
        for spec in pending:
            deps = {spec.same_shape_as, spec.broadcast_to, spec.ties_with} - {None}
            if spec.name in layout.shapes and spec.ties_with is None:
                deps = set()
            if spec.derive is not None:
                deps = set(spec.derive.names) & set(variant.inputs)
            if deps <= {d.name for d in done}:
                done.append(spec)
                pending.remove(spec)
                break
        else:
            raise ValueError(f"inputs {[s.name for s in pending]} depend on each other in a cycle")
    return done


def case_strategy(spec: LossSpec, dtype: str, reduction: str, accepts: frozenset[str] | None = None,
                  interior: bool = False, variants: Iterable[str] | None = None,
                  large: bool = False, bucketed: bool = False) -> st.SearchStrategy[Case]:
    """Examples of ``spec`` in ``dtype`` under ``reduction``.

    ``accepts`` limits the optional inputs and parameters to those a backend can take; the
    others stay at their default. ``interior`` draws gradcheck-friendly values (no kinks, no
    boundaries, no empty batches, float64). ``large`` draws the sizes of the large check
    (``conformance.sizes``), its big arrays spread from drawn pools (``conformance.fill``).
    ``bucketed`` draws few distinct sizes, for a backend that compiles once per shape.
    """
    allowed = [v for v in spec.variants if variants is None or v.name in set(variants)]
    accepted = accepts if accepts is not None else frozenset(spec.params) | {n for v in spec.variants for n in v.inputs}
    return _draw_case(_CasePlan(spec, dtype, reduction, accepted, interior, allowed, large, bucketed))


class _CasePlan:
    """What one check draws its cases from, and the strategies for it, built once per check: building
    and validating a strategy costs more than drawing from it."""

    def __init__(self, spec: LossSpec, dtype: str, reduction: str, accepted: frozenset[str], interior: bool,
                 allowed: list[Variant], large: bool, bucketed: bool) -> None:
        self.spec, self.dtype, self.reduction, self.accepted = spec, dtype, reduction, accepted
        self.interior, self.large = interior, large
        self.dims = dims_strategy(spec.dims.values(), interior, bucketed)
        self.variants = st.sampled_from(allowed)
        self.layouts = {v.name: st.sampled_from(large_layouts(spec, v) if large else v.layouts) for v in allowed}
        self._params: dict[tuple[str, tuple[Any, ...]], st.SearchStrategy[Any]] = {}

    def param_values(self, name: str, dims: dict[str, Any]) -> st.SearchStrategy[Any]:
        key = (name, tuple(sorted(dims.items())))  # a parameter's range may follow the dims
        if key not in self._params:
            self._params[key] = param_strategy(self.spec.params[name], dims, self.dtype)
        return self._params[key]

    def __repr__(self) -> str:
        return f"cases of {self.spec.id} ({self.dtype}, {self.reduction})"


# Module-level composites: ``st.composite`` reads its function's source when it decorates it, which
# a composite defined per check (or per example) paid every time.
@st.composite
def _draw_case(draw: st.DrawFn, plan: _CasePlan) -> Case:
    spec, dtype, accepted = plan.spec, plan.dtype, plan.accepted
    variant = draw(plan.variants)
    layout = draw(plan.layouts[variant.name])
    dims = draw(large_dims_strategy(spec, variant, layout) if plan.large else plan.dims)
    params: dict[str, Any] = {}
    for name in variant.params:
        param = spec.params[name]
        if name == "reduction":
            if plan.reduction != param.default or draw(st.booleans()):
                params[name] = plan.reduction
            continue
        if name in accepted and draw(_PASSED):
            params[name] = draw(plan.param_values(name, dims))
    resolved = {name: params.get(name, p.default) for name, p in spec.params.items()}
    arrays = _draw_inputs(draw, PooledFill(draw) if plan.large else Fill(draw), variant, layout, dims, resolved,
                          dtype, plan.interior, lambda ispec: ispec.name in accepted and draw(st.booleans()))
    layouts = draw_layouts(draw, variant, layout, arrays, plan.interior)
    return Case(spec.id, variant.name, layout.name, dtype, arrays, params, dims=dims, layouts=layouts)


def _draw_inputs(draw: st.DrawFn, fill: Fill, variant: Variant, layout: Layout, dims: dict[str, Any],
                 resolved: dict[str, Any], dtype: str, interior: bool, present: Callable[[InputSpec], bool] | None,
                 like: dict[str, np.ndarray | None] | None = None,
                 keep: frozenset[str] = frozenset()) -> dict[str, np.ndarray | None]:
    """Every input of ``variant``; ``present(ispec)`` says whether an optional one is given. With
    ``like``, the inputs take its shapes and presence and only their values are drawn, but for
    those in ``keep``, which are ``like``'s."""
    arrays: dict[str, np.ndarray | None] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    for ispec in _ordered(variant, layout):
        given = like[ispec.name] is not None if like is not None else not ispec.optional or present(ispec)  # type: ignore[misc]
        if not given or ispec.name in keep:
            arrays[ispec.name] = like[ispec.name] if given and like is not None else None
            continue
        if ispec.derive is not None:
            with np.errstate(all="ignore"):
                derived = np.asarray(ispec.derive.evaluate({**dims, **resolved, **arrays}, _CTX))
            arrays[ispec.name] = derived.astype(np.int64) if ispec.is_index else \
                quantize(derived, dtype) if PRECISIONS[dtype].narrow else derived.astype(storage_dtype(dtype))
            shapes[ispec.name] = arrays[ispec.name].shape
            continue
        if like is not None:
            shape = tuple(np.shape(like[ispec.name]))
        else:
            shape = _input_shape(draw, ispec, layout, dims, shapes)
        shapes[ispec.name] = shape
        if ispec.is_index:
            arrays[ispec.name] = index_array(draw, fill, ispec, shape, dims, resolved, interior)
        else:
            arrays[ispec.name] = float_array(draw, fill, ispec, shape, dtype, layout, arrays, interior)
    return arrays


def siblings_strategy(spec: LossSpec, case: Case, count: int) -> st.SearchStrategy[list[Case]]:
    """``count`` more cases like ``case`` (its variant, layout, dims, parameters, shapes and omitted
    inputs), with values of their own: the independent samples of a batch that ``vmap`` maps over."""
    variant = spec.variant(case.variant)
    layout = next(lay for lay in variant.layouts if lay.name == case.layout)
    resolved = {name: case.params.get(name, p.default) for name, p in spec.params.items()}

    indices = frozenset(i.name for i in variant.inputs.values() if i.is_index)
    return _siblings(case, variant, layout, resolved, indices, count)


@st.composite
def _siblings(draw: st.DrawFn, case: Case, variant: Variant, layout: Layout, resolved: dict[str, Any],
              indices: frozenset[str], count: int) -> list[Case]:
    def sibling() -> dict[str, np.ndarray | None]:
        arrays = _draw_inputs(draw, Fill(draw), variant, layout, case.dims, resolved, case.dtype, False, None,
                              case.inputs)
        if any(np.shape(v) != np.shape(case.inputs[k]) for k, v in arrays.items()):
            # A shape that follows values (CTC's concatenated targets follow the target lengths):
            # this sample keeps the first one's index inputs and draws its floats only.
            arrays = _draw_inputs(draw, Fill(draw), variant, layout, case.dims, resolved, case.dtype, False, None,
                                  case.inputs, indices)
        return arrays

    return [Case(case.loss, case.variant, case.layout, case.dtype, sibling(), dict(case.params),
                 dims=dict(case.dims)) for _ in range(count)]


_COTANGENT_VALUES = (1.0, -1.0, 0.5, 2.0, -0.25)
_COTANGENTS = Choices(_COTANGENT_VALUES)


def cotangent_strategy(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
    """A vector for vector-Jacobian products of a ``none`` output (small exact binary values); one
    of millions of elements (the large check's) is spread by a drawn seed."""
    if int(np.prod(shape)) > DRAWN_ELEMENTS:
        return st.integers(0, 2**32 - 1).map(
            lambda seed: np.random.default_rng(seed).choice(np.array(_COTANGENT_VALUES), size=shape))
    return _cotangent(shape)


@st.composite
def _cotangent(draw: st.DrawFn, shape: tuple[int, ...]) -> np.ndarray:
    return _COTANGENTS.array(draw, shape).astype(np.float64)
