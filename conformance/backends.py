"""Backends: what the suite checks. Named as ``package.module`` or ``package.module:attr``.

A backend object has attributes named and called like ``torch.nn.functional``'s losses. One that
works on NumPy arrays says so with ``loss_conformance_array_type = "numpy"``; the harness then
converts, and gradient checks are skipped for it. One written in JAX says ``"jax"``: it is handed
``jax.numpy`` arrays, and its gradients are JAX's own (``loss_conformance.jax_bridge``).
"""
from __future__ import annotations

import importlib
import inspect
import os
from importlib.metadata import entry_points
from typing import Any, Callable, Mapping

import numpy as np
import torch

from loss_conformance.callables import resolve_callables
from loss_conformance.jax_bridge import call_function, jax_module
from loss_conformance_reference import torch_loss
from loss_conformance_reference.model import LossSpec

ENV_VAR = "LOSS_CONFORMANCE_BACKEND"
ENTRY_POINT_GROUP = "loss_conformance.backends"
DEFAULT = "torch.nn.functional"


# Checks that run the backend under torch's autograd (torch and JAX backends) or torch.func (torch only).
AUTOGRAD_CHECKS = ("backward", "gradcheck")
TRANSFORM_CHECKS = ("forward_ad", "jvp_of_grad", "vmap")


class BackendError(Exception):
    """A backend that cannot be resolved or imported (a configuration error, exit status 2)."""


class Backend:
    """Calls one implementation of the losses; subclasses say how."""

    name: str = ""
    array_type: str = "torch"
    loaded_as: str | None = None  # the name load_backend resolved: how a spawned worker loads it again
    # What it declares it supports (loss_conformance.capabilities), as data: None when it declares nothing.
    capabilities: Any = None

    @property
    def differentiable(self) -> bool:
        """Its calls carry torch autograd (the backward and gradcheck checks)."""
        return self.array_type in ("torch", "jax")

    @property
    def transformable(self) -> bool:
        """torch.func can transform its calls (forward_ad, vmap, jvp_of_grad)."""
        return self.array_type == "torch"

    @property
    def compiles_per_shape(self) -> bool:
        """Each new input shape costs a compilation (JAX): the cases take few distinct sizes."""
        return self.array_type == "jax"

    def cannot_run(self, check: str) -> str | None:
        """Why ``check`` cannot run on this backend's calls (None when it can)."""
        if check in AUTOGRAD_CHECKS + TRANSFORM_CHECKS and not self.differentiable:
            return "backend is not differentiable in torch"
        if check in TRANSFORM_CHECKS and not self.transformable:
            return f"torch.func cannot transform a {self.array_type} backend's calls"
        return None

    def implements(self, spec: LossSpec) -> bool:
        raise NotImplementedError

    def accepts(self, spec: LossSpec) -> frozenset[str]:
        """The inputs and parameters this backend can be given for ``spec``."""
        return frozenset(spec.args) | frozenset(spec.keywords)

    def call(self, spec: LossSpec, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
        raise NotImplementedError


class FunctionalBackend(Backend):
    """An object with functional-style losses (``torch.nn.functional`` or a user's module)."""

    def __init__(self, obj: Any, name: str) -> None:
        self.obj = obj
        self.name = name
        self.array_type = getattr(obj, "loss_conformance_array_type", "torch")
        self.capabilities = getattr(obj, "loss_conformance_capabilities", None)
        if self.array_type == "jax":
            try:
                jax_module()
            except ImportError as exc:
                raise BackendError(f"{name}: {exc}") from None

    def function(self, spec: LossSpec) -> Callable[..., Any] | None:
        fn = getattr(self.obj, spec.id, None)
        return fn if callable(fn) else None

    def implements(self, spec: LossSpec) -> bool:
        return self.function(spec) is not None

    def accepts(self, spec: LossSpec) -> frozenset[str]:
        fn = self.function(spec)
        names = frozenset(spec.args) | frozenset(spec.keywords)
        try:
            sig = inspect.signature(fn) if fn is not None else None
        except (TypeError, ValueError):
            return names
        if sig is None or any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            return names
        return frozenset(spec.args) | (frozenset(spec.keywords) & frozenset(sig.parameters))

    def call(self, spec: LossSpec, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
        fn = self.function(spec)
        assert fn is not None
        values = {**{k: v for k, v in inputs.items() if v is not None}, **resolve_callables(spec, params)}
        if self.array_type == "numpy":
            if any(isinstance(v, torch.Tensor) and v.dtype == torch.bfloat16 for v in values.values()):
                # NumPy cannot hold it: in torch's words, so that the check is recorded as unsupported.
                raise TypeError(f'"NumPy arrays" not implemented for \'BFloat16\' (NumPy has no bfloat16; '
                                f'{self.name} takes NumPy arrays)')
            values = {k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else v for k, v in values.items()}
        args = [values[name] for name in spec.args]
        kwargs = {name: values[name] for name in spec.keywords if name in values}
        if self.array_type == "jax":
            return call_function(fn, args, kwargs)
        out = fn(*args, **kwargs)
        if self.array_type == "numpy":
            device = next(v.device for v in inputs.values() if isinstance(v, torch.Tensor))
            out = torch.from_numpy(np.asarray(out)).to(device)
        return out


class ModuleBackend(Backend):
    """The ``torch.nn`` module classes: constructor takes the options, forward the tensors."""

    name = "torch.nn"

    def implements(self, spec: LossSpec) -> bool:
        return hasattr(torch.nn, spec.module.name)

    def accepts(self, spec: LossSpec) -> frozenset[str]:
        return frozenset(spec.module.init) | frozenset(spec.module.forward)

    def call(self, spec: LossSpec, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
        values = {**{k: v for k, v in inputs.items() if v is not None}, **resolve_callables(spec, params)}
        cls = getattr(torch.nn, spec.module.name)
        module = cls(**{k: values[k] for k in spec.module.init if k in values})
        return module(*[values[k] for k in spec.module.forward])


class ReferenceBackend(Backend):
    """The spec itself, evaluated in float64 torch and cast to the input's dtype."""

    name = "reference"

    def implements(self, spec: LossSpec) -> bool:
        return True

    def accepts(self, spec: LossSpec) -> frozenset[str]:
        return frozenset(spec.params) | {n for v in spec.variants for n in v.inputs}

    def call(self, spec: LossSpec, inputs: Mapping[str, Any], params: Mapping[str, Any]) -> Any:
        return torch_loss(spec, inputs, params).to(inputs[spec.args[0]].dtype)


def load_backend(name: str | None = None) -> Backend:
    """Resolve a backend by name: built-in, entry point, ``module`` or ``module:attr``.

    Without a name, ``$LOSS_CONFORMANCE_BACKEND`` and then ``torch.nn.functional``.
    """
    name = name or os.environ.get(ENV_VAR) or DEFAULT
    backend = _resolve(name)
    backend.loaded_as = name
    return backend


def _resolve(name: str) -> Backend:
    if name == "torch.nn":
        return ModuleBackend()
    if name == "reference":
        return ReferenceBackend()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            try:
                return FunctionalBackend(ep.load(), name)
            except Exception as exc:  # noqa: BLE001 - any import failure is a configuration error
                raise BackendError(f"backend entry point '{name}' failed to load: {exc}") from exc
    module_name, _, attr = name.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001
        raise BackendError(f"cannot import backend module '{module_name}': {exc}") from exc
    for part in filter(None, attr.split(".")):
        if not hasattr(obj, part):
            raise BackendError(f"backend module '{module_name}' has no attribute '{attr}'")
        obj = getattr(obj, part)
    return FunctionalBackend(obj, name)
