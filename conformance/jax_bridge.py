"""Backends written in JAX (``loss_conformance_array_type = "jax"``): the harness hands them
``jax.numpy`` arrays, with 64-bit floats enabled, and grades their derivatives too.

A call is a ``torch.autograd.Function`` whose forward runs the JAX function and whose backward is
JAX's own vector-Jacobian product (``jax.vjp``), itself run through the same Function: so the
``backward`` and ``gradcheck`` checks compare JAX's gradients with the oracle, and a second
backward (``gradgradcheck`` where the spec promises double backward) differentiates JAX's VJP with
JAX again. torch.func's transforms (``forward_ad``, ``vmap``, ``jvp_of_grad``) cannot see inside
such a call; those checks are torch backends' only.

JAX is an optional dependency (``pip install "loss-conformance[jax]"``), imported only when a JAX
backend is called.
"""
from __future__ import annotations

import functools
import inspect
import os
import sys
from typing import Any, Callable, Sequence

import numpy as np
import torch

_JAX: Any = None


CACHE_VARIABLE = "LOSS_CONFORMANCE_JAX_CACHE"


def jax_module() -> Any:
    """``jax``, with 64-bit floats on (JAX truncates float64 inputs to float32 otherwise) and its
    persistent compilation cache (``compilation_cache_dir``)."""
    global _JAX
    if _JAX is None:
        try:
            import jax
        except ImportError as exc:
            raise ImportError(f"the backend takes JAX arrays, but JAX cannot be imported ({exc}); "
                              f'install it with: pip install "loss-conformance[jax]"') from None
        jax.config.update("jax_enable_x64", True)
        cache = compilation_cache_dir(jax.config.values.get("jax_compilation_cache_dir"))
        if cache is not None:
            # Every compilation is kept, however small: a run compiles hundreds of small functions,
            # the same ones in each worker and in the next run.
            jax.config.update("jax_compilation_cache_dir", cache)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        _JAX = jax
    return _JAX


def compilation_cache_dir(configured: str | None) -> str | None:
    """Where JAX keeps compiled functions between processes: the directory JAX is already told
    (``JAX_COMPILATION_CACHE_DIR``), else ``$LOSS_CONFORMANCE_JAX_CACHE`` (empty: no cache), else
    ``loss-conformance/jax`` in the user's cache directory. Workers of one run share it, and later
    runs start from it."""
    if configured:
        return None  # the user's own setting stands
    chosen = os.environ.get(CACHE_VARIABLE)
    if chosen is not None:
        return chosen or None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "loss-conformance", "jax")


def jax_started() -> bool:
    """Whether JAX's runtime runs in this process (its backends were created by a first
    computation); importing JAX alone starts nothing."""
    bridge = sys.modules.get("jax._src.xla_bridge")
    return bool(getattr(bridge, "_backends", None))


def to_jax(value: torch.Tensor) -> Any:
    """A copy of the tensor as a JAX array, put on the device as it is (``jnp.asarray`` would
    compile a copy for every new shape)."""
    jax = jax_module()
    value = value.detach().cpu()
    if value.dtype == torch.bfloat16:  # torch's NumPy has no bfloat16: through float32, exactly
        return jax.device_put(value.float().numpy().astype(jax.numpy.bfloat16))
    return jax.device_put(np.array(value.numpy()))


def to_torch(value: Any, device: torch.device | str) -> torch.Tensor:
    jnp = jax_module().numpy
    array = np.array(value)  # on the host, without a compiled conversion
    if array.dtype == jnp.bfloat16:
        return torch.from_numpy(array.astype(np.float32)).to(device, torch.bfloat16)
    return torch.from_numpy(array).to(device)


def call_function(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)`` with its tensors as JAX arrays: the result as torch tensors, with torch
    autograd through ``jax.vjp``. The call is jitted, cached per function and options, so a shape
    already seen runs compiled. Numeric options are arguments of the jitted function (weakly typed,
    as Python numbers are), so a new margin, delta or blank is no new compilation; a function that
    branches on one in Python, or makes a shape of it, has them fixed instead, like the other
    options (a string, a bool)."""
    args, kwargs = _with_defaults(fn, args, kwargs)
    given = [("a", i, v) for i, v in enumerate(args)] + [("k", k, v) for k, v in kwargs.items()]
    slots = tuple((kind, key) for kind, key, v in given if isinstance(v, torch.Tensor))
    tensors = [v for _, _, v in given if isinstance(v, torch.Tensor)]
    options = tuple((kind, key, v) for kind, key, v in given if not isinstance(v, torch.Tensor))
    numeric = tuple((kind, key) for kind, key, v in options if type(v) in (int, float))  # not a bool
    fixed = tuple(o for o in options if (o[0], o[1]) not in numeric)
    numbers = tuple(v for _, _, v in options if type(v) in (int, float))
    dynamic_key = (fn, len(args), slots, fixed, numeric)
    if numeric and dynamic_key not in _FIXED_NUMBERS:
        try:
            traced = _traced(dynamic_key, slots + numeric, fixed, fn, len(args), dynamic=True)
            return call_jax(_Bound(traced, numbers), tensors)
        except _NumbersMustBeFixed:
            pass
    traced = _traced((fn, len(args), slots, options), slots, options, fn, len(args))
    result = call_jax(_Bound(traced, ()), tensors)
    if numeric:  # it runs with its numbers fixed, and not with them traced: so from now on
        _FIXED_NUMBERS.add(dynamic_key)
    return result


def _with_defaults(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The call's arguments with every default the function's signature gives filled in, so that a
    call that passes an option at its default and one that leaves it out are one jitted function
    (one compilation per shape, not one per way of writing the call)."""
    signature = _signature(fn)
    if signature is None:
        return tuple(args), kwargs
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError:  # the call itself raises it, as the function would
        return tuple(args), kwargs
    bound.apply_defaults()
    return bound.args, bound.kwargs


@functools.lru_cache(maxsize=None)
def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or extension function without one
        return None


def _traced(key: tuple[Any, ...], slots: tuple[tuple[str, Any], ...], options: tuple[tuple[str, Any, Any], ...],
            fn: Callable[..., Any], count: int, dynamic: bool = False) -> "Traced":
    try:
        traced = _TRACED.get(key)
        if traced is None:
            traced = _TRACED[key] = Traced(_of_arrays(fn, count, slots, options), dynamic)
        return traced
    except TypeError:  # an option that cannot be a cache key (a list): traced for this call only
        return Traced(_of_arrays(fn, count, slots, options), dynamic)


def _of_arrays(fn: Callable[..., Any], count: int, slots: tuple[tuple[str, Any], ...],
               options: tuple[tuple[str, Any, Any], ...]) -> Callable[..., Any]:
    """``fn`` as a function of the values of ``slots`` alone (its arrays, then any numeric options),
    the other options fixed (``count`` positional arguments in all)."""
    def of_arrays(*arrays: Any) -> Any:
        args: list[Any] = [None] * count
        kwargs: dict[str, Any] = {}
        for kind, key, value in (*options, *((kind, key, a) for (kind, key), a in zip(slots, arrays))):
            if kind == "a":
                args[key] = value
            else:
                kwargs[key] = value
        return fn(*args, **kwargs)
    return of_arrays


class _NumbersMustBeFixed(Exception):
    """Tracing failed with the numeric options as arguments: the function branches on them."""


class Traced:
    """A JAX function of arrays (and, last, Python numbers), jitted; run eagerly from the first call
    whose tracing fails (Python control flow on values), which then raises what the function
    raises. With ``dynamic`` (numeric options among its arguments), any failure raises
    ``_NumbersMustBeFixed`` instead, and the call is made again with them fixed. Its
    vector-Jacobian product, per set of inputs differentiated, is another ``Traced``."""

    def __init__(self, fn: Callable[..., Any], dynamic: bool = False) -> None:
        self.fn, self.eager, self.dynamic = fn, False, dynamic
        self.jitted = jax_module().jit(fn)
        self._vjps: dict[tuple[tuple[int, ...], int, bool, int], Traced] = {}

    def __call__(self, *arrays: Any) -> Any:
        if self.dynamic:
            try:
                return self.jitted(*arrays)
            except Exception:  # noqa: BLE001 - tracing fails in many ways (a slice, a shape, a branch):
                raise _NumbersMustBeFixed from None  # the call with them fixed says what it does
        if not self.eager:
            try:
                return self.jitted(*arrays)
            except _untraceable():  # the eager call below says what the function does
                self.eager = True
        return self.fn(*arrays)

    def vjp(self, wrt: tuple[int, ...], count: int, several: bool, numbers: int) -> "Traced":
        """The function of (``count`` inputs, cotangents, ``numbers`` numbers) giving the gradients
        with respect to the inputs ``wrt``."""
        key = (wrt, count, several, numbers)
        if key not in self._vjps:
            fn = self.fn

            def vjp(*arrays: Any) -> tuple[Any, ...]:
                inputs, cotangents = arrays[:count], arrays[count:len(arrays) - numbers]
                fixed = arrays[len(arrays) - numbers:] if numbers else ()

                def of_differentiated(*differentiated: Any) -> Any:
                    full = list(inputs)
                    for i, value in zip(wrt, differentiated):
                        full[i] = value
                    return fn(*full, *fixed)

                _, pullback = jax_module().vjp(of_differentiated, *[inputs[i] for i in wrt])
                return tuple(pullback(tuple(cotangents) if several else cotangents[0]))

            self._vjps[key] = Traced(vjp)
        return self._vjps[key]


class _Bound:
    """A ``Traced`` with the numeric options of one call, passed after the arrays."""

    def __init__(self, traced: Traced, numbers: tuple[float, ...]) -> None:
        self.traced, self.numbers = traced, numbers

    def __call__(self, *arrays: Any) -> Any:
        return self.traced(*arrays, *self.numbers)

    def vjp(self, wrt: tuple[int, ...], count: int, several: bool) -> "_Bound":
        return _Bound(self.traced.vjp(wrt, count, several, len(self.numbers)), self.numbers)


_TRACED: dict[Any, Traced] = {}
# (function, options) whose numeric options must be fixed: tracing failed with them as arguments
_FIXED_NUMBERS: set[Any] = set()


def _untraceable() -> tuple[type[BaseException], ...]:
    errors = jax_module().errors
    names = ("ConcretizationTypeError", "TracerBoolConversionError", "TracerIntegerConversionError",
             "TracerArrayConversionError", "NonConcreteBooleanIndexError")
    return tuple(getattr(errors, n) for n in names if hasattr(errors, n))


def call_jax(fn: "_Bound", tensors: Sequence[torch.Tensor]) -> Any:
    """``fn`` of the tensors as JAX arrays, as torch tensors on the first tensor's device, with
    torch autograd through ``jax.vjp`` (to any order)."""
    return _JaxCall.apply(fn, *tensors)


class _JaxCall(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, fn: _Bound, *tensors: torch.Tensor) -> Any:  # type: ignore[override]
        ctx.fn = fn
        ctx.save_for_backward(*tensors)
        device = tensors[0].device if tensors else "cpu"
        out = fn(*[to_jax(t) for t in tensors])
        ctx.several = isinstance(out, (tuple, list))
        return tuple(to_torch(o, device) for o in out) if ctx.several else to_torch(out, device)

    @staticmethod
    def backward(ctx: Any, *cotangents: torch.Tensor) -> Any:  # type: ignore[override]
        tensors = ctx.saved_tensors
        wrt = tuple(i for i, t in enumerate(tensors) if t.is_floating_point())
        out: list[torch.Tensor | None] = [None] * len(tensors)
        if wrt:
            grads = call_jax(ctx.fn.vjp(wrt, len(tensors), ctx.several), [*tensors, *cotangents])
            for i, grad in zip(wrt, grads if isinstance(grads, tuple) else (grads,)):
                out[i] = grad
        return (None, *out)
