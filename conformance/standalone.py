"""A snippet for another project's bug report: it calls the backend's own function directly, with
its own array type (NumPy arrays for a NumPy backend, ``jax.numpy`` for JAX, torch tensors for
torch), and imports nothing from this project. The value the spec expects is written into it."""
from __future__ import annotations

from typing import Any

import numpy as np

from loss_conformance.callables import callable_params
from loss_conformance.case import Case
from loss_conformance.checks import CheckContext
from loss_conformance_reference.model import LossSpec

# Backends that are no module function of their own: torch.nn's classes, the spec itself.
_BUILT_IN = ("torch.nn", "reference")


def standalone_snippet(case: Case, spec: LossSpec, backend: str, array_type: str, device: str,
                       expected: np.ndarray | None, reduction: str, wrt: tuple[str, ...] = (),
                       expected_grads: dict[str, np.ndarray] | None = None) -> str | None:
    """The snippet, or None where it cannot stand alone (``stands_alone``). With ``wrt`` (a gradient
    check), a torch or JAX snippet also takes the gradient of the output, summed, with respect to
    those inputs, beside ``expected_grads``."""
    if not stands_alone(case, spec, backend):
        return None
    module, _, attr = backend.partition(":")
    lines = ["import importlib", "", "import numpy", *_array_imports(array_type), "",
             f"backend = importlib.import_module({module!r})"]
    lines += [f"backend = getattr(backend, {part!r})" for part in filter(None, attr.split("."))]
    values: dict[str, str] = {}
    wrt = wrt if array_type in ("torch", "jax") else ()
    for name, value in case.present_inputs().items():
        dtype = case.dtype_of(value)
        grad = ".requires_grad_()" if name in wrt and array_type == "torch" else ""
        lines.append(f"{name} = {_array(value, dtype, array_type, device)}{grad}")
        values[name] = name
    values.update({k: repr(v) for k, v in case.params.items()})
    args = [values[n] for n in spec.args]
    kwargs = [f"{n}={values[n]}" for n in spec.keywords if n in values]
    if case.layouts:
        lines.append(f"# The suite passed {', '.join(sorted(case.layouts))} in another memory layout "
                     f"({'; '.join(f'{n}: {v.kind}' for n, v in sorted(case.layouts.items()))}); contiguous here.")
    call = f"backend.{spec.id}({', '.join(args + kwargs)})"
    if wrt and array_type == "jax":
        lines += [f"actual, vjp = jax.vjp(lambda {', '.join(wrt)}: {call}, {', '.join(wrt)})",
                  'print("actual:  ", actual)', 'print("gradient:", vjp(jnp.ones_like(actual)))']
    else:
        lines += [f"actual = {call}", 'print("actual:  ", actual)']
        if wrt:
            lines.append(f'print("gradient:", torch.autograd.grad(actual, [{", ".join(wrt)}], torch.ones_like(actual)))')
    if expected is not None:
        tol = spec.tolerance.get(case.dtype)
        allowed = f", within rtol={tol.rtol:g}, atol={tol.atol:g}" if tol else ""
        lines.append(f"# What the spec gives on these exact inputs (reduction={reduction!r}), computed in float64"
                     f"{allowed}:")
        lines.append(f'print("expected:", {_literal(np.asarray(expected, dtype=np.float64))})')
    if wrt and expected_grads:
        lines.append("# and its gradient of the output, summed, in the order above:")
        lines.append(f'print("expected gradient:", [{", ".join(_literal(expected_grads[n]) for n in wrt)}])')
    return "\n".join(lines) + "\n"


def stands_alone(case: Case, spec: LossSpec, backend: str | None) -> bool:
    """Whether ``case`` can be replayed without this project: not for a backend with no name to import
    it by or no function of its own (torch.nn's classes, the spec), an option that is a function (a
    distance), or inputs of millions of elements (they live in a file)."""
    return backend is not None and backend not in _BUILT_IN and not case.is_large() \
        and not callable_params(spec) & set(case.params)


def _array_imports(array_type: str) -> list[str]:
    if array_type == "jax":
        return ["import jax", "import jax.numpy as jnp", "", 'jax.config.update("jax_enable_x64", True)']
    if array_type == "torch":
        return ["import torch"]
    return []


def _literal(value: np.ndarray, dtype: str = "float64") -> str:
    """NumPy source for ``value``, exactly (every float's repr round-trips), empty shapes kept."""
    np_dtype = "int64" if value.dtype.kind in "iu" else "float32" if dtype == "bfloat16" else dtype
    if value.size == 0:
        return f"numpy.empty({value.shape!r}, dtype=numpy.{np_dtype})"
    return f"numpy.array({_source(value.tolist())}, dtype=numpy.{np_dtype})"


def _source(value: Any) -> str:
    """Python source for nested lists of numbers; NaN and infinities as NumPy's names."""
    if isinstance(value, list):
        return "[" + ", ".join(map(_source, value)) + "]"
    if isinstance(value, float) and not np.isfinite(value):
        return "numpy.nan" if np.isnan(value) else "numpy.inf" if value > 0 else "-numpy.inf"
    return repr(value)


def _array(value: np.ndarray, dtype: str, array_type: str, device: str) -> str:
    literal = _literal(value, dtype)
    if value.dtype.kind in "iu":
        dtype = "int64"
    if array_type == "jax":
        return f"jnp.asarray({literal})" + (".astype(jnp.bfloat16)" if dtype == "bfloat16" else "")
    if array_type == "torch":
        cast = ", torch.bfloat16" if dtype == "bfloat16" else ""
        return f"torch.from_numpy({literal}).to({device!r}{cast})"
    return literal


def failure_snippet(ctx: CheckContext, case: Case, wrt: tuple[str, ...] = ()) -> str | None:
    """The standalone snippet of a failing ``case`` of ``ctx``'s check, with the spec's value for the
    reduction the case passes (or defaults to); for a gradient check (``wrt``), its gradient too."""
    if not stands_alone(case, ctx.spec, ctx.backend.loaded_as):
        return None
    param = ctx.spec.params.get("reduction")
    reduction = str(case.params.get("reduction", param.default)) if param else "none"
    expected: np.ndarray | None = None
    grads: dict[str, np.ndarray] | None = None
    try:
        expected = ctx.oracle.forward(case, (reduction,))[0][reduction]
        if wrt:
            grads = ctx.oracle.vjp(case, reduction, np.ones(np.shape(expected)), wrt)
    except Exception:  # noqa: BLE001 - the spec raises here (an invalid input): no value to write in
        pass
    return standalone_snippet(case, ctx.spec, ctx.backend.loaded_as, ctx.backend.array_type, ctx.device,
                              expected, reduction, wrt, grads)
