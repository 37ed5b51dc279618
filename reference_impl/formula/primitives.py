"""The functions a formula may call, each written once over an Array-API namespace.

Every primitive takes the ``ArrayContext`` first. Gradient conventions matter here because the
torch evaluation is the oracle for gradients: selections use ``where`` on safe operands so that
an unselected branch never feeds inf or NaN into autograd.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from loss_conformance_reference.formula.context import ArrayContext
from loss_conformance_reference.formula.ordering import searchsorted, sort
from loss_conformance_reference.limits import check_array_size


@dataclass(frozen=True)
class Primitive:
    fn: Callable[..., Any]
    keywords: frozenset[str] = frozenset()
    doc: str = ""


def _a(ctx: ArrayContext, x: Any) -> Any:
    return ctx.asarray(x)


def _float(ctx: ArrayContext, x: Any) -> Any:
    x = _a(ctx, x)
    return x if x.dtype == ctx.float_dtype else ctx.xp.astype(x, ctx.float_dtype)


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


def where(ctx: ArrayContext, cond: Any, a: Any, b: Any) -> Any:
    a, b = _a(ctx, a), _a(ctx, b)
    if a.dtype != b.dtype:
        a, b = _float(ctx, a), _float(ctx, b)
    return ctx.xp.where(_a(ctx, cond), a, b)


def clamp(ctx: ArrayContext, x: Any, min: Any = None, max: Any = None) -> Any:  # noqa: A002
    # Written with where so that the gradient at x == bound flows to x, as torch.clamp does.
    x = _a(ctx, x)
    if min is not None:
        x = where(ctx, x < min, min, x)
    if max is not None:
        x = where(ctx, x > max, max, x)
    return x


def maximum(ctx: ArrayContext, a: Any, b: Any) -> Any:
    a = _a(ctx, a)
    return where(ctx, (a >= b) | (a != a), a, b)  # NaN in either argument propagates


def minimum(ctx: ArrayContext, a: Any, b: Any) -> Any:
    a = _a(ctx, a)
    return where(ctx, (a <= b) | (a != a), a, b)


def _unary(name: str) -> Callable[[ArrayContext, Any], Any]:
    def fn(ctx: ArrayContext, x: Any) -> Any:
        return getattr(ctx.xp, name)(_float(ctx, x))

    fn.__name__ = name
    return fn


def sign(ctx: ArrayContext, x: Any) -> Any:
    return ctx.xp.sign(_a(ctx, x))


def sigmoid(ctx: ArrayContext, x: Any) -> Any:
    x = _float(ctx, x)
    xp = ctx.xp
    pos = where(ctx, x >= 0, x, 0.0)
    neg = where(ctx, x < 0, x, 0.0)
    return where(ctx, x >= 0, 1.0 / (1.0 + xp.exp(-pos)), xp.exp(neg) / (1.0 + xp.exp(neg)))


def softplus(ctx: ArrayContext, x: Any) -> Any:
    """log(1 + exp(x)), stable for large |x|, with the slope 1/2 at 0 (each branch on a safe operand)."""
    x = _float(ctx, x)
    xp = ctx.xp
    positive = x > 0
    pos = where(ctx, positive, x, 0.0)
    neg = where(ctx, positive, 0.0, x)
    return where(ctx, positive, pos + xp.log1p(xp.exp(-pos)), xp.log1p(xp.exp(neg)))


def log_sigmoid(ctx: ArrayContext, x: Any) -> Any:
    """log(sigmoid(x)) = -softplus(-x), stable for large |x|."""
    return -softplus(ctx, -_float(ctx, x))


def xlogy(ctx: ArrayContext, x: Any, y: Any) -> Any:
    """x * log(y), defined as 0 where x == 0 (also for y == 0); as torch.xlogy, the gradient in
    x is 0 where x == 0."""
    x, y = _float(ctx, x), _float(ctx, y)
    zero = x == 0
    return where(ctx, zero, 0.0, x * ctx.xp.log(where(ctx, zero, 1.0, y)))


def norm(ctx: ArrayContext, x: Any, p: float = 2.0, axis: Any = -1, keepdims: bool = False) -> Any:
    """The p-norm over ``axis`` (p >= 1); the gradient at a zero vector is 0."""
    xp = ctx.xp
    a = xp.abs(_float(ctx, x))
    if p == 1:
        return xp.sum(a, axis=_axis(axis), keepdims=keepdims)
    # x * x for p = 2: |x| ** 2 has the same value but, through sign(0) = 0, no curvature at a zero component.
    x = _float(ctx, x)
    powered = xp.sum(x * x if p == 2 else a ** p, axis=_axis(axis), keepdims=keepdims)
    zero = powered == 0
    return where(ctx, zero, 0.0, where(ctx, zero, 1.0, powered) ** (1.0 / p))


def constant(ctx: ArrayContext, x: Any) -> Any:
    """``x``, held constant by autograd: a rescaling by it adds no derivative terms of its own,
    of any order (a scale taken from |x| would add its kinks to every derivative)."""
    x = _a(ctx, x)
    return x.detach() if hasattr(x, "detach") else x


def cumsum(ctx: ArrayContext, x: Any, axis: int = -1) -> Any:
    return ctx.xp.cumulative_sum(_a(ctx, x), axis=axis)


def cumprod(ctx: ArrayContext, x: Any, axis: int = -1) -> Any:
    x = _a(ctx, x)
    if x.dtype == ctx.xp.bool:
        x = _float(ctx, x)
    if hasattr(ctx.xp, "cumulative_prod"):
        return ctx.xp.cumulative_prod(x, axis=axis)
    return ctx.xp.exp(ctx.xp.cumulative_sum(ctx.xp.log(x), axis=axis))


def _reducer(name: str) -> Callable[..., Any]:
    def fn(ctx: ArrayContext, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        x = _a(ctx, x)
        if name in ("sum", "mean", "prod") and x.dtype == ctx.xp.bool:
            x = _float(ctx, x)
        return getattr(ctx.xp, name)(x, axis=_axis(axis), keepdims=keepdims)

    fn.__name__ = name
    return fn


def logsumexp(ctx: ArrayContext, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """log(sum(exp(x))), shifted by the max; all -inf gives -inf with a zero (not NaN) gradient."""
    xp = ctx.xp
    x = _float(ctx, x)
    axis = _axis(axis)
    axes = tuple(range(x.ndim)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    if any(int(x.shape[a]) == 0 for a in axes):  # the sum of nothing is 0, its log -inf
        reduced = xp.sum(x, axis=axis, keepdims=keepdims)
        return reduced - float("inf")
    m, log_total = _max_and_log_total(ctx, x, axis)
    out = log_total + m
    if not keepdims:
        out = xp.squeeze(out, axis=axis if axis is not None else tuple(range(x.ndim)))
    return out


def _max_and_log_total(ctx: ArrayContext, x: Any, axis: Any) -> tuple[Any, Any]:
    """The max m along ``axis`` (0 where it is not finite) and log(sum(exp(x - m))), both kept
    as size-1 axes."""
    xp = ctx.xp
    m = xp.max(x, axis=axis, keepdims=True)
    m = where(ctx, xp.isfinite(m), m, 0.0)
    total = xp.sum(xp.exp(x - m), axis=axis, keepdims=True)
    positive = total > 0
    return m, where(ctx, positive, xp.log(where(ctx, positive, total, 1.0)), -float("inf"))


def log_softmax(ctx: ArrayContext, x: Any, axis: int = -1) -> Any:
    """(x - m) - log(sum(exp(x - m))): the shift comes off first, so logits of 1e12 lose no digits
    (x - logsumexp(x) would subtract two numbers of 1e12 and keep an error of their ulp)."""
    x = _float(ctx, x)
    if int(x.shape[axis]) == 0:
        return x
    m, log_total = _max_and_log_total(ctx, x, axis)
    return (x - m) - log_total


def softmax(ctx: ArrayContext, x: Any, axis: int = -1) -> Any:
    return ctx.xp.exp(log_softmax(ctx, x, axis=axis))


def take(ctx: ArrayContext, x: Any, index: Any) -> Any:
    """``x[index]`` for a 1-D ``x`` and an index array of any shape."""
    xp = ctx.xp
    index = _a(ctx, index)
    flat = xp.reshape(index, (-1,))
    return xp.reshape(xp.take(_a(ctx, x), flat, axis=0), tuple(index.shape))


def take_along_axis(ctx: ArrayContext, x: Any, index: Any, axis: int = -1) -> Any:
    return ctx.xp.take_along_axis(_a(ctx, x), _a(ctx, index), axis=axis)


def expand_dims(ctx: ArrayContext, x: Any, axis: int = 0) -> Any:
    return ctx.xp.expand_dims(_a(ctx, x), axis=axis)


def squeeze(ctx: ArrayContext, x: Any, axis: Any = 0) -> Any:
    return ctx.xp.squeeze(_a(ctx, x), axis=_axis(axis))


def moveaxis(ctx: ArrayContext, x: Any, source: int, destination: int) -> Any:
    return ctx.xp.moveaxis(_a(ctx, x), source, destination)


def shift(ctx: ArrayContext, x: Any, k: int, axis: int = -1, fill: Any = 0) -> Any:
    """Move elements ``k`` places forward along ``axis`` (k >= 0), filling the first ``k``."""
    xp = ctx.xp
    x = _a(ctx, x)
    k = int(k)
    moved = xp.moveaxis(x, axis, -1)
    n = int(moved.shape[-1])
    k = min(k, n)
    head = xp.full(tuple(moved.shape[:-1]) + (k,), fill, dtype=x.dtype, device=ctx.device)
    out = xp.concat((head, moved[..., : n - k]), axis=-1)
    return xp.moveaxis(out, -1, axis)


def stack(ctx: ArrayContext, arrays: Any, axis: int = 0) -> Any:
    arrays = [_a(ctx, a) for a in arrays]
    if len({a.dtype for a in arrays}) > 1:
        arrays = [_float(ctx, a) for a in arrays]
    shape = tuple(ctx.xp.broadcast_arrays(*arrays)[0].shape)
    return ctx.xp.stack([ctx.xp.broadcast_to(a, shape) for a in arrays], axis=axis)


def select(ctx: ArrayContext, x: Any, mask: Any) -> Any:
    """The elements of ``x`` where ``mask`` holds, in row-major order, as a 1-D array."""
    x, mask = _a(ctx, x), _a(ctx, mask)
    x, mask = ctx.xp.broadcast_arrays(x, mask)
    return x[mask]


def absmax(ctx: ArrayContext, x: Any) -> Any:
    """Largest |x| over all elements, 0 for an empty array (a magnitude for tolerances)."""
    x = _float(ctx, x)
    if numel(ctx, x) == 0:
        return ctx.asarray(0.0)
    return ctx.xp.max(ctx.xp.abs(x))


def arange(ctx: ArrayContext, n: int) -> Any:
    check_array_size(int(n), "arange")
    return ctx.xp.arange(int(n), dtype=ctx.index_dtype, device=ctx.device)


def one_hot(ctx: ArrayContext, index: Any, n: int, axis: int = -1) -> Any:
    """1.0 where ``arange(n)`` equals ``index``, the class dimension inserted at ``axis``."""
    index = expand_dims(ctx, index, axis=axis)
    check_array_size(numel(ctx, index) * int(n), "one_hot")
    shape = [1] * index.ndim
    shape[axis] = int(n)
    classes = ctx.xp.reshape(arange(ctx, n), tuple(shape))
    return _float(ctx, index == classes)


def ones(ctx: ArrayContext, n: int) -> Any:
    check_array_size(int(n), "ones")
    return ctx.xp.ones(int(n), dtype=ctx.float_dtype, device=ctx.device)


def ones_like(ctx: ArrayContext, x: Any) -> Any:
    return ctx.xp.ones(tuple(_a(ctx, x).shape), dtype=ctx.float_dtype, device=ctx.device)


def numel(ctx: ArrayContext, x: Any) -> int:
    size = 1
    for d in _a(ctx, x).shape:
        size *= int(d)
    return size


def size(ctx: ArrayContext, x: Any, axis: int) -> int:
    return int(_a(ctx, x).shape[axis])


def ndim(ctx: ArrayContext, x: Any) -> int:
    return _a(ctx, x).ndim


def close(ctx: ArrayContext, a: Any, b: Any) -> Any:
    """Elementwise closeness at the context's tolerance; NaN matches NaN, inf matches inf."""
    xp = ctx.xp
    a, b = _float(ctx, a), _float(ctx, b)
    if ctx.overflow != float("inf"):  # both sides as the dtype under test holds them
        a, b = (where(ctx, xp.abs(v) > ctx.overflow, v * float("inf"), v) for v in (a, b))
    same = a == b
    both_nan = xp.isnan(a) & xp.isnan(b)
    finite = xp.isfinite(a) & xp.isfinite(b)
    diff = xp.abs(where(ctx, finite, a - b, 0.0))
    near = finite & (diff <= ctx.atol + ctx.rtol * xp.abs(where(ctx, finite, b, 0.0)))
    return xp.all(same | both_nan | near)


def _predicate(name: str) -> Callable[[ArrayContext, Any], Any]:
    def fn(ctx: ArrayContext, x: Any) -> Any:
        return getattr(ctx.xp, name)(_a(ctx, x))

    fn.__name__ = name
    return fn


_AXIS = frozenset({"axis", "keepdims"})

PRIMITIVES: dict[str, Primitive] = {
    "where": Primitive(where, doc="where(cond, a, b): a where cond holds, else b"),
    "clamp": Primitive(clamp, frozenset({"min", "max"}), "clamp(x, min=, max=); gradient flows at the bound"),
    "maximum": Primitive(maximum, doc="elementwise maximum; the first argument wins ties"),
    "minimum": Primitive(minimum, doc="elementwise minimum; the first argument wins ties"),
    "sign": Primitive(sign, doc="sign, with sign(0) = 0"),
    "sigmoid": Primitive(sigmoid, doc="logistic function, stable at large |x|"),
    "logsumexp": Primitive(logsumexp, _AXIS, "log(sum(exp(x))) over axis, stable"),
    "log_softmax": Primitive(log_softmax, frozenset({"axis"}), "(x - max) - log(sum(exp(x - max))) along axis"),
    "softmax": Primitive(softmax, frozenset({"axis"}), "exp(log_softmax(x, axis))"),
    "take": Primitive(take, doc="take(x, index): x[index] for 1-D x"),
    "take_along_axis": Primitive(take_along_axis, frozenset({"axis"}), "NumPy's take_along_axis"),
    "expand_dims": Primitive(expand_dims, frozenset({"axis"}), "insert a size-1 axis"),
    "squeeze": Primitive(squeeze, frozenset({"axis"}), "remove a size-1 axis"),
    "moveaxis": Primitive(moveaxis, doc="moveaxis(x, source, destination)"),
    "shift": Primitive(shift, frozenset({"axis", "fill"}), "shift(x, k, axis=-1, fill=0): move k places forward"),
    "stack": Primitive(stack, frozenset({"axis"}), "stack((a, b, ...), axis=0), broadcasting them first"),
    "select": Primitive(select, doc="select(x, mask): the elements where mask holds, as 1-D"),
    "absmax": Primitive(absmax, doc="largest |x|, 0 when x is empty"),
    "arange": Primitive(arange, doc="0, 1, ..., n-1 as indices"),
    "one_hot": Primitive(one_hot, frozenset({"axis"}), "one_hot(index, n, axis=-1) as floats"),
    "ones": Primitive(ones, doc="ones(n): a 1-D vector of n ones"),
    "ones_like": Primitive(ones_like, doc="ones of x's shape"),
    "numel": Primitive(numel, doc="number of elements"),
    "size": Primitive(size, doc="size(x, axis)"),
    "ndim": Primitive(ndim, doc="number of dimensions"),
    "softplus": Primitive(softplus, doc="log(1 + exp(x)), stable"),
    "log_sigmoid": Primitive(log_sigmoid, doc="log(sigmoid(x)), stable"),
    "xlogy": Primitive(xlogy, doc="x * log(y), 0 where x == 0"),
    "norm": Primitive(norm, frozenset({"p", "axis", "keepdims"}), "p-norm over axis (default the last)"),
    "constant": Primitive(constant, doc="constant(x): x, with no derivative (autograd's detach)"),
    "cumsum": Primitive(cumsum, frozenset({"axis"}), "cumulative sum along axis"),
    "cumprod": Primitive(cumprod, frozenset({"axis"}), "cumulative product along axis"),
    "sort": Primitive(sort, frozenset({"axis", "descending"}), "sort(x, axis=-1, descending=False), stable"),
    "searchsorted": Primitive(searchsorted, frozenset({"side"}),
                              "searchsorted(sorted, values, side='left'): per row of the last axis, "
                              "how many sorted elements lie below (left) or at most at (right) each value"),
    "close": Primitive(close, doc="all elements close at the dtype's tolerance (properties)"),
}
for _name in ("abs", "exp", "log", "log1p", "expm1", "sqrt", "tanh"):
    PRIMITIVES[_name] = Primitive(_unary(_name), doc=f"elementwise {_name}")
for _name in ("sum", "mean", "prod"):
    PRIMITIVES[_name] = Primitive(_reducer(_name), _AXIS, f"{_name} over axis (all axes by default)")
PRIMITIVES["amax"] = Primitive(_reducer("max"), _AXIS, "maximum over axis")
PRIMITIVES["amin"] = Primitive(_reducer("min"), _AXIS, "minimum over axis")
PRIMITIVES["all"] = Primitive(_reducer("all"), _AXIS, "logical and over axis")
PRIMITIVES["any"] = Primitive(_reducer("any"), _AXIS, "logical or over axis")
for _name in ("isnan", "isinf", "isfinite"):
    PRIMITIVES[_name] = Primitive(_predicate(_name), doc=f"elementwise {_name}")
PRIMITIVES["float"] = Primitive(_float, doc="cast to the context's float dtype")

CONSTANTS: dict[str, float] = {"inf": float("inf"), "nan": float("nan"), "pi": 3.141592653589793}
