"""Function transforms of one backend call, as a worker process runs them: forward-mode AD
(``torch.func.jvp`` and ``torch.autograd.forward_ad``), ``torch.func.vmap``, forward-over-reverse
(``jvp`` of ``grad``) and reverse-over-reverse (double backward). torch gives each its own
derivative and batching rules, with their own bugs, so each is run through the backend itself; the
parent compares the results with the oracle.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import torch
import torch.autograd.forward_ad as fwAD

from loss_conformance.backends import Backend
from loss_conformance.execution import Reply, Request, build_tensors, describe, raised_text, snapshots, untouched
from loss_conformance_reference.model import LossSpec

# What torch.func raises where it cannot vmap a function at all, whoever wrote it: Python control
# flow or ``.item()`` on a batched value, an output whose shape depends on the values, an op with
# neither a batching rule nor a fallback. Such a call says nothing about the backend's values.
VMAP_LIMITATIONS = (
    "vmap: It looks like you're",  # .item() or data-dependent control flow
    "vmap: We do not support batching operators that can",  # dynamic output shapes
    "vmap: we do not yet support",
    "vmap: Attempted to vmap over",
    "the fallback path doesn't work",
)

Fn = Callable[..., Any]


def transform(backend: Backend, spec: LossSpec, request: Request) -> Reply:
    """Run the transform ``request.op`` names on the backend's loss."""
    runner = {"jvp": _jvp, "vmap": _vmap, "jvp_of_grad": _jvp_of_grad,
              "double_backward": _double_backward}.get(request.op)
    if runner is None:
        raise ValueError(f"unknown request op '{request.op}'")
    return runner(backend, spec, request)


def _setup(backend: Backend, spec: LossSpec, request: Request,
           names: tuple[str, ...]) -> tuple[dict[str, torch.Tensor | None], Fn, tuple[torch.Tensor, ...]]:
    """The tensors (none requiring grad: the transforms track derivatives themselves), the loss as a
    function of the inputs ``names`` and those inputs, in order."""
    tensors = build_tensors(dataclasses.replace(request, wrt=()))

    def fn(*xs: torch.Tensor) -> Any:
        return backend.call(spec, {**tensors, **dict(zip(names, xs))}, request.params)

    return tensors, fn, tuple(tensors[n] for n in names)  # type: ignore[misc]


def _tangents(request: Request, primals: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.as_tensor(request.tangents[name], dtype=p.dtype, device=p.device)
                 for name, p in zip(request.wrt, primals))


def _finish(tensors: Mapping[str, torch.Tensor | None], before: Any, **fields: Any) -> Reply:
    return Reply(problems=tuple(untouched(before, tensors)), **fields)


def _jvp(backend: Backend, spec: LossSpec, request: Request) -> Reply:
    """The loss's tangent for ``request.tangents``, by ``torch.func.jvp`` and by dual tensors."""
    tensors, fn, primals = _setup(backend, spec, request, request.wrt)
    tangents = _tangents(request, primals)
    before = snapshots(tensors)
    try:
        output, by_func = torch.func.jvp(fn, primals, tangents)
    except Exception as exc:  # noqa: BLE001 - the backend's failure under the transform is the result
        return _finish(tensors, before, derived_raised=f"torch.func.jvp raised {raised_text(exc)}")
    try:
        with fwAD.dual_level():
            out = fn(*(fwAD.make_dual(p, t) for p, t in zip(primals, tangents)))
            by_dual = fwAD.unpack_dual(out).tangent if isinstance(out, torch.Tensor) else None
            by_dual = by_dual.clone() if by_dual is not None else None  # a view of the dual level's storage
    except Exception as exc:  # noqa: BLE001
        return _finish(tensors, before, output=describe(output),
                       derived_raised=f"torch.autograd.forward_ad raised {raised_text(exc)}")
    return _finish(tensors, before, output=describe(output),
                   derived={"torch.func.jvp": describe(by_func),
                            "torch.autograd.forward_ad": describe(by_dual) if by_dual is not None else None})


def _vmap(backend: Backend, spec: LossSpec, request: Request) -> Reply:
    """The loss under ``torch.func.vmap`` over the leading axis of every input given (a stack of
    independent cases of one shape); the parameters are shared."""
    names = tuple(n for n, v in request.inputs.items() if v is not None)
    tensors, fn, batched = _setup(backend, spec, request, names)
    before = snapshots(tensors)
    try:
        output = torch.func.vmap(fn, in_dims=0)(*batched)
    except Exception as exc:  # noqa: BLE001
        text = raised_text(exc)
        if any(marker in text for marker in VMAP_LIMITATIONS):
            return _finish(tensors, before, limitation=text)
        return _finish(tensors, before, raised=text)
    return _finish(tensors, before, output=describe(output))


def _jvp_of_grad(backend: Backend, spec: LossSpec, request: Request) -> Reply:
    """Hessian-vector products, forward over reverse: ``jvp`` of ``grad`` of the loss weighted by
    ``request.cotangent`` and summed (a scalar), w.r.t. every input of ``request.wrt``."""
    tensors, fn, primals = _setup(backend, spec, request, request.wrt)
    tangents = _tangents(request, primals)
    before = snapshots(tensors)

    def weighted(*xs: torch.Tensor) -> torch.Tensor:
        out = fn(*xs)
        return (out * torch.as_tensor(request.cotangent, dtype=out.dtype, device=out.device)).sum()

    grad = torch.func.grad(weighted, argnums=tuple(range(len(primals))))
    try:
        _, hvps = torch.func.jvp(grad, primals, tangents)
    except Exception as exc:  # noqa: BLE001
        return _finish(tensors, before, derived_raised=f"torch.func.jvp(torch.func.grad(loss)) raised "
                                                       f"{raised_text(exc)}")
    return _finish(tensors, before, derived={name: describe(h) for name, h in zip(request.wrt, hvps)})



def _double_backward(backend: Backend, spec: LossSpec, request: Request) -> Reply:
    """Hessian-vector products, reverse over reverse (autograd's double backward, which a spec's
    ``double_backward`` promises): the gradient of <grad(sum(cotangent * loss)), tangents> w.r.t.
    every input of ``request.wrt``, the inputs in their layouts."""
    tensors = build_tensors(request)
    before = snapshots(tensors)
    leaves = [tensors[name] for name in request.wrt]
    try:
        out = backend.call(spec, tensors, request.params)
        total = (out * torch.as_tensor(request.cotangent, dtype=out.dtype, device=out.device)).sum()
        grads = torch.autograd.grad(total, leaves, create_graph=True, allow_unused=True)
        terms = [(g * torch.as_tensor(request.tangents[name], dtype=g.dtype, device=g.device)).sum()
                 for name, g in zip(request.wrt, grads) if g is not None and g.requires_grad]
        hvps = torch.autograd.grad(sum(terms), leaves, allow_unused=True) if terms else [None] * len(leaves)
    except Exception as exc:  # noqa: BLE001 - the backend's failure under double backward is the result
        return _finish(tensors, before, derived_raised=f"double backward raised {raised_text(exc)}")
    return _finish(tensors, before, derived={name: describe(h) if h is not None else None
                                             for name, h in zip(request.wrt, hvps)})
