"""Known deviations: where a named backend is known to differ from the spec, and when."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

import numpy as np
import torch
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from loss_conformance_reference.errors import SpecError
from loss_conformance_reference.loader import load_deviations
from loss_conformance_reference.formula import numpy_context
from loss_conformance_reference.model import DEFAULT_FAILURES, Deviation, LossSpec, Tolerance, Variant

_CTX = numpy_context()


# The large check is the forward and backward checks at other sizes: a deviation declared for
# either applies to it too (its ``when`` still decides on each example).
_COVERED_BY = {"large": ("large", "forward", "backward")}


def with_deviations(specs: dict[str, LossSpec], path: str | None) -> dict[str, LossSpec]:
    """``specs`` with the deviations of a user's file (``--known-deviations PATH``) added to their losses'."""
    if not path:
        return specs
    out = dict(specs)
    for loss, extra in load_deviations(path, specs).items():
        out[loss] = dataclasses.replace(out[loss], deviations=out[loss].deviations + extra)
    return out


def applicable(spec: LossSpec, backend: str, check: str, dtype: str | None = None,
               torch_version: str | None = None) -> tuple[Deviation, ...]:
    """The deviations of ``spec`` declared for ``backend``'s ``check`` (in ``dtype``, where one names
    dtypes; under ``torch_version``, the installed torch's by default, where one names versions)."""
    names = _COVERED_BY.get(check, (check,))
    version = Version(str(torch_version or torch.__version__)).public  # 2.13.0+cpu is 2.13.0
    return tuple(d for d in spec.deviations if (backend in d.backends or "*" in d.backends)
                 and any(n in d.checks for n in names) and (not d.dtypes or dtype is None or dtype in d.dtypes)
                 and (not d.torch or SpecifierSet(d.torch).contains(version, prereleases=True)))


def explaining(deviations: tuple[Deviation, ...], within_declared: bool, kind: str) -> tuple[Deviation, ...]:
    """The entries that can explain a failure of ``kind`` (``causes.failure_kind``): those that cover
    the kind (``failures:``, by default DEFAULT_FAILURES), and of those with a tolerance only where
    it covers the failure (``within_declared``: outside the spec's tolerance, inside the declared one)."""
    return tuple(d for d in deviations if kind in (d.failures or DEFAULT_FAILURES)
                 and (within_declared or d.tolerance is None))


def declared_tolerance(deviations: tuple[Deviation, ...]) -> Tolerance | None:
    """The loosest tolerance the entries declare (None when none does)."""
    declared = [d.tolerance for d in deviations if d.tolerance is not None]
    if not declared:
        return None
    return Tolerance(max(t.rtol for t in declared), max(t.atol for t in declared))


def reads_bindings(deviations: tuple[Deviation, ...], variants: Iterable[Variant]) -> bool:
    """Whether a ``when`` of ``deviations`` reads a named value of the formula of ``variants``:
    only then are those values evaluated for it."""
    read = frozenset().union(*(d.when.names for d in deviations if d.when is not None))
    return bool(read & {name for v in variants for name, _ in v.bindings})


def matching(deviations: tuple[Deviation, ...], env: Callable[[], dict[str, Any]]) -> Deviation | None:
    """The first deviation whose ``when`` holds for this example (no ``when``: always).

    A ``when`` that raises, or gives something other than a truth value, is a mistake in the file
    that declares it, not a result of the check: it is a ``SpecError`` pointing at that file.
    """
    scope: dict[str, Any] | None = None
    for dev in deviations:
        if dev.when is None:
            return dev
        if scope is None:
            scope = env()
        if not dev.when.names <= scope.keys():
            # The loader checked every name: one missing here belongs to another context (a binding of
            # another variant, the cotangent outside a backward check), where the entry does not apply.
            continue
        try:
            with np.errstate(all="ignore"):
                value = dev.when.evaluate(scope, _CTX)
            hit = _truth(value)
        except Exception as exc:  # noqa: BLE001 - any failure of the predicate is the file's error
            raise _error(dev, f"failed on an example: {type(exc).__name__}: {exc}") from None
        if hit is None:
            raise _error(dev, f"gave a {type(value).__name__} on an example, not a truth value")
        if hit:
            return dev
    return None


def _error(dev: Deviation, problem: str) -> SpecError:
    origin = dev.origin
    text = dev.when.text if dev.when is not None else ""
    if origin is None:  # a Deviation built by hand, not by the loader
        return SpecError("(known deviation)", None, "when", f"'{text}' {problem}")
    return SpecError(origin.path, origin.line, origin.field, f"'{text}' {problem}")


def _truth(value: Any) -> bool | None:
    """A scalar's truth as ``bool`` gives it; an array of booleans or numbers holds when any element
    does (the shipped specs reduce with ``any``/``all`` themselves, so they only give scalars);
    None for anything else (a string, a tuple)."""
    if isinstance(value, (bool, int, float, np.bool_, np.number)):
        return bool(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        array = np.asarray(value)
        if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.number):
            return bool(np.any(array))
    return None
