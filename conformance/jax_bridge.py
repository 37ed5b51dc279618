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

import sys
from typing import Any, Callable, Sequence

import numpy as np
import torch

_JAX: Any = None


def jax_module() -> Any:
    """``jax``, with 64-bit floats on (JAX truncates float64 inputs to float32 otherwise)."""
    global _JAX
    if _JAX is None:
        try:
            import jax
        except ImportError as exc:
            raise ImportError(f"the backend takes JAX arrays, but JAX cannot be imported ({exc}); "
                              f'install it with: pip install "loss-conformance[jax]"') from None
        jax.config.update("jax_enable_x64", True)
        _JAX = jax
    return _JAX


def jax_started() -> bool:
    """Whether JAX's runtime runs in this process (its backends were created by a first
    computation); importing JAX alone starts nothing."""
    bridge = sys.modules.get("jax._src.xla_bridge")
    return bool(getattr(bridge, "_backends", None))


def to_jax(value: torch.Tensor) -> Any:
    jnp = jax_module().numpy
    value = value.detach().cpu()
    if value.dtype == torch.bfloat16:  # NumPy has no bfloat16: through float32, exactly
        return jnp.asarray(value.float().numpy()).astype(jnp.bfloat16)
    return jnp.asarray(value.numpy())


def to_torch(value: Any, device: torch.device | str) -> torch.Tensor:
    jnp = jax_module().numpy
    array = jnp.asarray(value)
    if array.dtype == jnp.bfloat16:
        return torch.from_numpy(np.array(array.astype(jnp.float32))).to(device, torch.bfloat16)
    return torch.from_numpy(np.array(array)).to(device)


def call_function(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """``fn(*args, **kwargs)`` with its tensors as JAX arrays: the result as torch tensors, with torch
    autograd through ``jax.vjp``. The options (everything that is not a tensor) are fixed in a jitted
    function of the arrays, cached per function and options, so a shape already seen runs compiled."""
    given = [("a", i, v) for i, v in enumerate(args)] + [("k", k, v) for k, v in kwargs.items()]
    slots = tuple((kind, key) for kind, key, v in given if isinstance(v, torch.Tensor))
    options = tuple((kind, key, v) for kind, key, v in given if not isinstance(v, torch.Tensor))
    key = (fn, len(args), slots, options)
    try:
        traced = _TRACED.get(key)
        if traced is None:
            traced = _TRACED[key] = Traced(_of_arrays(fn, len(args), slots, options))
    except TypeError:  # an option that cannot be a cache key (a list): traced for this call only
        traced = Traced(_of_arrays(fn, len(args), slots, options))
    return call_jax(traced, [v for _, _, v in given if isinstance(v, torch.Tensor)])


def _of_arrays(fn: Callable[..., Any], count: int, slots: tuple[tuple[str, Any], ...],
               options: tuple[tuple[str, Any, Any], ...]) -> Callable[..., Any]:
    """``fn`` as a function of its arrays alone, the options (``count`` positional arguments in all)
    fixed."""
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


class Traced:
    """A JAX function of arrays, jitted; run eagerly from the first call whose tracing fails (Python
    control flow on values), which then raises what the function raises. Its vector-Jacobian
    product, per set of inputs differentiated, is another ``Traced``."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.eager = fn, False
        self.jitted = jax_module().jit(fn)
        self._vjps: dict[tuple[tuple[int, ...], int, bool], Traced] = {}

    def __call__(self, *arrays: Any) -> Any:
        if not self.eager:
            try:
                return self.jitted(*arrays)
            except _untraceable():  # the eager call below says what the function does
                self.eager = True
        return self.fn(*arrays)

    def vjp(self, wrt: tuple[int, ...], count: int, several: bool) -> "Traced":
        """The function of (inputs, cotangents) giving the gradients with respect to ``wrt``."""
        key = (wrt, count, several)
        if key not in self._vjps:
            fn = self.fn

            def vjp(*arrays: Any) -> tuple[Any, ...]:
                inputs, cotangents = arrays[:count], arrays[count:]

                def of_floats(*floats: Any) -> Any:
                    full = list(inputs)
                    for i, value in zip(wrt, floats):
                        full[i] = value
                    return fn(*full)

                _, pullback = jax_module().vjp(of_floats, *[inputs[i] for i in wrt])
                return tuple(pullback(tuple(cotangents) if several else cotangents[0]))

            self._vjps[key] = Traced(vjp)
        return self._vjps[key]


_TRACED: dict[Any, Traced] = {}


def _untraceable() -> tuple[type[BaseException], ...]:
    errors = jax_module().errors
    names = ("ConcretizationTypeError", "TracerBoolConversionError", "TracerIntegerConversionError",
             "TracerArrayConversionError", "NonConcreteBooleanIndexError")
    return tuple(getattr(errors, n) for n in names if hasattr(errors, n))


def call_jax(fn: Traced, tensors: Sequence[torch.Tensor]) -> Any:
    """``fn`` of the tensors as JAX arrays, as torch tensors on the first tensor's device, with
    torch autograd through ``jax.vjp`` (to any order)."""
    return _JaxCall.apply(fn, *tensors)


class _JaxCall(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, fn: Traced, *tensors: torch.Tensor) -> Any:  # type: ignore[override]
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
