"""Hypothesis strategies built from a spec alone: dims, shapes, values, parameters, variants."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Iterable

import numpy as np
from hypothesis import reject
from hypothesis import strategies as st

from loss_conformance.case import Case
from loss_conformance.choices import Choices
from loss_conformance.domains import element_pool, everyday_sampler, float32_inside, weighted, weighted_values
from loss_conformance.fill import DRAWN_ELEMENTS, Fill, PooledFill
from loss_conformance.layouts import draw_layouts
from loss_conformance.precision import PRECISIONS, draw_width, quantize, representable_bounds, storage_dtype
from loss_conformance.profiles import ignore_local_constants
from loss_conformance.shape_buckets import bucketed_dims
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
        low = max(dim.min, 1) if interior else dim.min
        sizes = size_strategy(low, max(dim.max, low))
        if dim.variadic:
            parts[dim.name] = size_strategy(dim.rank[0], dim.rank[1]).flatmap(
                lambda rank, sizes=sizes: st.tuples(*[sizes] * rank))
        else:
            parts[dim.name] = sizes
    return st.fixed_dictionaries(parts)


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


def _index_array(draw: st.DrawFn, fill: Fill, spec: InputSpec, shape: tuple[int, ...], dims: dict[str, Any],
                 params: dict[str, Any], interior: bool) -> np.ndarray:
    if spec.domain == "length":
        # A length of a sequence padded to ``bound``: the whole of it (the usual case, and the
        # one whose alignments are feasible) as often as anything shorter.
        bound = int(dims[spec.bound]) if spec.bound else 8
        shorter = list(range(min(spec.min, bound), bound + 1))
        return fill.array(np.int64, shape, Choices(shorter + [bound] * len(shorter)))
    high = int(dims[spec.classes]) - 1 if spec.classes else 8
    allowed = list(range(max(high, 0) + 1))
    if spec.exclude:
        excluded = {params[name] for name in spec.exclude}
        allowed = [c for c in allowed if c not in excluded]
        if not allowed:  # every class excluded: only an empty array can be drawn
            if int(np.prod(shape)):
                reject()
            return np.zeros(shape, dtype=np.int64)
    classes = Choices(allowed)
    if spec.terminator is not None and len(shape) > 0:
        return _terminated_rows(draw, fill, shape, classes, spec.terminator, interior)
    specials = [params[name] for name in spec.special]
    # Some special entries (an ignored target among kept ones) half of the time, all of them (every
    # target ignored) one time in eight.
    mode = draw(weighted_values((3, ["none"]), (4, ["some"]), (1, ["all"]))) \
        if specials and not interior else "none"
    if mode == "all":
        return np.full(shape, draw(st.sampled_from(specials)), dtype=np.int64)
    some = mode == "some" and int(np.prod(shape)) > 0
    if some:  # drawn before the values, as in _float_array
        special = draw(st.sampled_from(specials))
        first = draw(st.integers(0, int(np.prod(shape)) - 1))
    values = fill.array(np.int64, shape, classes, lambda rng, size: rng.choice(classes.values, size=size))
    if some:
        values = np.where(_some_not_all(fill, shape, first), special, values)
    return values


def _some_not_all(fill: Fill, shape: tuple[int, ...], first: int) -> np.ndarray:
    """A mask with at least one True (at ``first``) and, where it has two elements or more, one False."""
    mask = np.array(fill.mask(shape), dtype=bool).reshape(-1)
    mask[first] = True
    if mask.all() and mask.size > 1:
        mask[(first + 1) % mask.size] = False
    return mask.reshape(shape)


def _terminated_rows(draw: st.DrawFn, fill: Fill, shape: tuple[int, ...], classes: Choices, terminator: int,
                     interior: bool) -> np.ndarray:
    """Index rows (last axis) read up to the first ``terminator``: k indices, then the terminator.

    k is 0 (the terminator first), the full row (no terminator at all) or anything between;
    the indices are sometimes distinct, sometimes repeated; after the terminator come either
    more terminators or, on purpose, values that a conforming backend must not read.
    """
    length = shape[-1]
    out = np.full(shape, terminator, dtype=np.int64)
    garbage = not interior and draw(st.booleans())
    # Half of what follows the terminator is the terminator again, half any class.
    after = Choices([terminator] * len(classes) + list(classes.values)) if garbage else Choices([terminator])
    rows = list(np.ndindex(*shape[:-1]))
    heads = [draw(st.one_of(st.just(0), st.just(length), st.integers(0, length))) for _ in rows]
    unique = [k <= len(classes) and draw(st.booleans()) for k in heads]
    for row, k, distinct in zip(rows, heads, unique):  # the values after every choice of structure
        head = fill.row(classes, k, distinct)
        tail = [terminator] + fill.row(after, length - k - 1, False) if k < length else []
        out[row] = head + tail
    return out


def _vector_mask(fill: Fill, shape: tuple[int, ...]) -> np.ndarray:
    """A boolean mask that selects whole vectors along the last axis (broadcast to ``shape``)."""
    rows = fill.mask(shape[:-1])
    return np.broadcast_to(rows[..., None], shape)


def _simplex(values: np.ndarray, axis: int) -> np.ndarray:
    """Normalise non-negative values along ``axis``; an all-zero slice becomes uniform."""
    total = values.sum(axis=axis, keepdims=True, dtype=np.float64)
    uniform = np.full_like(values, 1.0 / max(values.shape[axis], 1), dtype=np.float64)
    out = np.where(total > 0, values / np.where(total > 0, total, 1.0), uniform)
    return out.astype(values.dtype)


def _float_array(draw: st.DrawFn, fill: Fill, spec: InputSpec, shape: tuple[int, ...], dtype: str, layout: Layout,
                 arrays: dict[str, np.ndarray | None], interior: bool) -> np.ndarray:
    narrow = PRECISIONS[dtype].narrow
    # A half dtype's values are drawn in float64 and rounded into it at the end (``quantize``):
    # a special value beyond its range saturates at its largest finite value.
    np_dtype = np.float64 if narrow else storage_dtype(dtype)
    other = arrays.get(spec.ties_with) if spec.ties_with and not interior else None
    # What to do is drawn before the values: a change to these choices (shrinking, Hypothesis'
    # mutations) then leaves the values' choices where they were (``loss_conformance.choices``).
    ties = other is not None and other.shape == shape
    whole = ties and len(shape) > 0 and draw(st.booleans())
    zero_vectors = spec.zero_vectors and not interior and len(shape) > 0 and draw(st.booleans())
    values = fill.array(np_dtype, shape, element_pool(spec.domain, dtype, interior), everyday_sampler(spec.domain))
    if spec.domain == "simplex" and spec.classes:
        pattern = layout.shapes.get(spec.name) or spec.shape or ()
        values = _simplex(values, list(pattern).index(spec.classes))
    if ties:
        # Elementwise ties, or (for vectors) whole vectors equal along the last axis.
        mask = _vector_mask(fill, shape) if whole else fill.mask(shape)
        values = np.where(mask, other, values).astype(np_dtype)
    if zero_vectors:
        values = np.where(_vector_mask(fill, shape), np_dtype(0.0), values).astype(np_dtype)
    return quantize(values, dtype) if narrow else values


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

    dims_strategy_ = dims_strategy(spec.dims.values(), interior, bucketed)

    @st.composite
    def draw_case(draw: st.DrawFn) -> Case:
        variant = draw(st.sampled_from(allowed))
        layout = draw(st.sampled_from(large_layouts(spec, variant) if large else variant.layouts))
        dims = draw(large_dims_strategy(spec, variant, layout) if large else dims_strategy_)
        params: dict[str, Any] = {}
        for name in variant.params:
            param = spec.params[name]
            if name == "reduction":
                if reduction != param.default or draw(st.booleans()):
                    params[name] = reduction
                continue
            if name in accepted and draw(_PASSED):
                params[name] = draw(param_strategy(param, dims, dtype))
        resolved = {name: params.get(name, p.default) for name, p in spec.params.items()}
        arrays = _draw_inputs(draw, PooledFill(draw) if large else Fill(draw), variant, layout, dims, resolved, dtype,
                              interior,
                              lambda ispec: ispec.name in accepted and draw(st.booleans()))
        layouts = draw_layouts(draw, variant, layout, arrays, interior)
        return Case(spec.id, variant.name, layout.name, dtype, arrays, params, dims=dims, layouts=layouts)

    return draw_case()


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
            arrays[ispec.name] = _index_array(draw, fill, ispec, shape, dims, resolved, interior)
        else:
            arrays[ispec.name] = _float_array(draw, fill, ispec, shape, dtype, layout, arrays, interior)
    return arrays


def siblings_strategy(spec: LossSpec, case: Case, count: int) -> st.SearchStrategy[list[Case]]:
    """``count`` more cases like ``case`` (its variant, layout, dims, parameters, shapes and omitted
    inputs), with values of their own: the independent samples of a batch that ``vmap`` maps over."""
    variant = spec.variant(case.variant)
    layout = next(lay for lay in variant.layouts if lay.name == case.layout)
    resolved = {name: case.params.get(name, p.default) for name, p in spec.params.items()}

    indices = frozenset(i.name for i in variant.inputs.values() if i.is_index)

    def sibling(draw: st.DrawFn) -> dict[str, np.ndarray | None]:
        arrays = _draw_inputs(draw, Fill(draw), variant, layout, case.dims, resolved, case.dtype, False, None,
                              case.inputs)
        if any(np.shape(v) != np.shape(case.inputs[k]) for k, v in arrays.items()):
            # A shape that follows values (CTC's concatenated targets follow the target lengths):
            # this sample keeps the first one's index inputs and draws its floats only.
            arrays = _draw_inputs(draw, Fill(draw), variant, layout, case.dims, resolved, case.dtype, False, None,
                                  case.inputs, indices)
        return arrays

    @st.composite
    def draw_siblings(draw: st.DrawFn) -> list[Case]:
        return [Case(case.loss, case.variant, case.layout, case.dtype, sibling(draw), dict(case.params),
                     dims=dict(case.dims)) for _ in range(count)]

    return draw_siblings()


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
