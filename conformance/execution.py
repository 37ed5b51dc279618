"""One backend call, as a worker process runs it: build the tensors, call, differentiate, and
describe what came back in plain data that crosses a process boundary.

Everything the backend could get wrong about its inputs is checked here, next to the call:
mutated values, shape, strides, dtype or ``requires_grad``, and outputs that share memory with
an input. Nothing here compares against the spec; the parent does that.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import torch

from loss_conformance.backends import Backend
from loss_conformance.compile_fallbacks import drain
from loss_conformance.layouts import MemoryLayout, materialise
from loss_conformance.memory import keep_large_blocks_for
from loss_conformance.tensors import TORCH_DTYPES
from loss_conformance_reference.model import LossSpec


@dataclass(frozen=True)
class Request:
    """What to run: ``op`` is ``call`` (forward, and backward when ``wrt`` is given), ``gradcheck``,
    or a function transform of ``loss_conformance.transforms`` (``jvp``, ``vmap``, ``jvp_of_grad``)."""

    op: str
    loss: str
    inputs: Mapping[str, np.ndarray | None]
    params: Mapping[str, Any]
    device: str
    wrt: tuple[str, ...] = ()
    cotangent: np.ndarray | None = None
    dtypes: Mapping[str, str] = field(default_factory=dict)  # e.g. bfloat16, which NumPy cannot hold
    double_backward: bool = False
    layouts: Mapping[str, MemoryLayout] = field(default_factory=dict)  # inputs not contiguous
    cotangent_layout: MemoryLayout | None = None
    tangents: Mapping[str, np.ndarray] = field(default_factory=dict)  # forward-mode directions, per wrt input


@dataclass(frozen=True)
class Output:
    """A value the backend returned, as plain data: a tensor's values plus its metadata. The values are
    exact: in the narrowest dtype that holds them on the way from the worker, in float64 once received."""

    type_name: str
    dtype: str | None = None
    device: str | None = None
    shape: tuple[int, ...] | None = None
    values: np.ndarray | None = None
    requires_grad: bool = False

    @property
    def is_tensor(self) -> bool:
        return self.values is not None

    def same_as(self, other: "Output") -> bool:
        """Bit-for-bit the same result (NaN equal to NaN): two calls on one input must agree so."""
        if (self.type_name, self.dtype, self.device, self.shape) != \
                (other.type_name, other.dtype, other.device, other.shape):
            return False
        if self.values is None or other.values is None:
            return self.values is other.values
        return bool(np.array_equal(self.values, other.values, equal_nan=True))


@dataclass(frozen=True)
class Reply:
    """The outcome of one request; ``raised`` is the backend's exception, as text."""

    output: Output | None = None
    raised: str | None = None
    grads: Mapping[str, Output | None] | None = None
    grad_raised: str | None = None
    problems: tuple[str, ...] = ()
    gradcheck: str | None = None
    # A transform's named results (a JVP per API, a Hessian-vector product per input) and what it
    # raised; ``limitation``: torch.func itself cannot transform this call (data-dependent control flow).
    derived: Mapping[str, Output | None] | None = None
    derived_raised: str | None = None
    limitation: str | None = None
    # What torch.compile said during the request: it fell back to eager (``compile_fallbacks``).
    notices: tuple[str, ...] = ()


# The narrowest dtype NumPy holds a tensor's values in exactly: a float32 output crosses to the parent
# in half the bytes of float64 (2^24 elements: 64 MiB, not 128), and ``widened`` turns it into float64 there.
_EXACT_IN = {torch.float32: torch.float32, torch.float16: torch.float16, torch.bfloat16: torch.float32}


def describe(value: Any) -> Output:
    if not isinstance(value, torch.Tensor):
        return Output(type(value).__name__)
    if value._is_zerotensor():  # forward AD's symbolic zero, which has no storage to read
        value = torch.zeros(value.shape, dtype=value.dtype, device=value.device)
    # A copy: the backend's later steps (its backward) must not change what it answered.
    values = value.detach().to(device="cpu", dtype=_EXACT_IN.get(value.dtype, torch.float64), copy=True).numpy()
    return Output(type(value).__name__, str(value.dtype), str(value.device), tuple(value.shape), values,
                  bool(value.requires_grad))


def widened(reply: Reply) -> Reply:
    """``reply`` with every tensor's values in float64, as the parent compares them."""
    output, grads, derived = _wide(reply.output), _all_wide(reply.grads), _all_wide(reply.derived)
    if output is reply.output and grads is reply.grads and derived is reply.derived:
        return reply
    return dataclasses.replace(reply, output=output, grads=grads, derived=derived)


def _wide(output: Output | None) -> Output | None:
    if output is None or output.values is None or output.values.dtype == np.float64:
        return output
    return dataclasses.replace(output, values=output.values.astype(np.float64))


def _all_wide(outputs: Mapping[str, Output | None] | None) -> Mapping[str, Output | None] | None:
    if not outputs:
        return outputs
    wide = {name: _wide(output) for name, output in outputs.items()}
    return outputs if all(wide[name] is outputs[name] for name in outputs) else wide


def build_tensors(request: Request) -> dict[str, torch.Tensor | None]:
    out: dict[str, torch.Tensor | None] = {}
    for name, value in request.inputs.items():
        if value is None:
            out[name] = None
            continue
        tensor = torch.from_numpy(np.array(value, copy=True))
        if name in request.dtypes:
            tensor = tensor.to(TORCH_DTYPES[request.dtypes[name]])
        tensor = materialise(tensor.to(request.device), request.layouts.get(name))
        if name in request.wrt and tensor.is_floating_point():
            tensor.requires_grad_(True)
        out[name] = tensor
    return out


@dataclass(frozen=True)
class _Snapshot:
    values: torch.Tensor
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int
    dtype: torch.dtype
    requires_grad: bool


def _snapshot(tensor: torch.Tensor) -> _Snapshot:
    return _Snapshot(tensor.detach().clone(), tuple(tensor.shape), tuple(tensor.stride()),
                     tensor.storage_offset(), tensor.dtype, tensor.requires_grad)


def _changes(name: str, before: _Snapshot, after: torch.Tensor) -> str | None:
    for what, old, new in (("shape", before.shape, tuple(after.shape)), ("dtype", before.dtype, after.dtype),
                           ("strides", before.stride, tuple(after.stride())),
                           ("storage offset", before.offset, after.storage_offset()),
                           ("requires_grad", before.requires_grad, after.requires_grad)):
        if old != new:
            return f"backend modified its input `{name}`: {what} {old} became {new}"
    now = after.detach()
    same = torch.equal(now, before.values) or bool(
        torch.all((now == before.values) | (torch.isnan(now) & torch.isnan(before.values)))) \
        if now.is_floating_point() else torch.equal(now, before.values)
    if not same:
        return f"backend modified its input `{name}`: its values changed during the call"
    return None


def snapshots(tensors: Mapping[str, torch.Tensor | None]) -> dict[str, _Snapshot]:
    return {name: _snapshot(t) for name, t in tensors.items() if t is not None}


def untouched(before: Mapping[str, _Snapshot], tensors: Mapping[str, torch.Tensor | None]) -> list[str]:
    """What the backend changed in its inputs since ``before`` (nothing, for a conforming one)."""
    return [p for name, snap in before.items() if (p := _changes(name, snap, tensors[name]))]  # type: ignore


def _aliases(output: Any, tensors: Mapping[str, torch.Tensor | None]) -> list[str]:
    if not isinstance(output, torch.Tensor) or output.untyped_storage().nbytes() == 0:
        return []
    ptr = output.untyped_storage().data_ptr()
    return [f"output aliases input `{name}`: it shares the input's memory" for name, t in tensors.items()
            if t is not None and t.untyped_storage().nbytes() and t.untyped_storage().data_ptr() == ptr]


def raised_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def execute(backend: Backend, spec: LossSpec, request: Request) -> Reply:
    """Run ``request`` on ``backend``; exceptions of the backend become ``Reply.raised``."""
    reply = _execute(backend, spec, request)
    notices = drain()
    return dataclasses.replace(reply, notices=notices) if notices else reply


def _execute(backend: Backend, spec: LossSpec, request: Request) -> Reply:
    keep_large_blocks_for(request.inputs.values())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a backend's per-call warnings would flood the report
        if request.op == "gradcheck":
            return Reply(gradcheck=_gradcheck(backend, spec, request))
        if request.op != "call":
            from loss_conformance.transforms import transform  # imports this module: imported on first use

            return transform(backend, spec, request)
        return _call(backend, spec, request)


def _call(backend: Backend, spec: LossSpec, request: Request) -> Reply:
    tensors = build_tensors(request)
    before = snapshots(tensors)
    try:
        value = backend.call(spec, tensors, request.params)
    except Exception as exc:  # noqa: BLE001 - any exception on valid input is non-conformance
        return Reply(raised=raised_text(exc))
    problems = _aliases(value, tensors)
    output = describe(value)
    grads, grad_raised = _backward(value, tensors, request) if request.wrt else (None, None)
    problems += untouched(before, tensors)
    return Reply(output=output, grads=grads, grad_raised=grad_raised, problems=tuple(problems))


def _backward(value: Any, tensors: Mapping[str, torch.Tensor | None],
              request: Request) -> tuple[dict[str, Output | None] | None, str | None]:
    if not isinstance(value, torch.Tensor) or not value.requires_grad or request.cotangent is None:
        return None, None
    if tuple(value.shape) != tuple(request.cotangent.shape):
        return None, None  # the parent reports the wrong shape; there is nothing to differentiate against
    leaves = [tensors[name] for name in request.wrt]
    cot = materialise(torch.as_tensor(request.cotangent, dtype=value.dtype, device=value.device),
                      request.cotangent_layout)
    try:
        grads = torch.autograd.grad(value, leaves, grad_outputs=cot, allow_unused=True)
    except Exception as exc:  # noqa: BLE001
        return None, raised_text(exc)
    return {name: (describe(g) if g is not None else None) for name, g in zip(request.wrt, grads)}, None


def _gradcheck(backend: Backend, spec: LossSpec, request: Request) -> str | None:
    """None when gradcheck (and gradgradcheck where promised) pass; otherwise why not."""
    tensors = build_tensors(request)
    leaves = tuple(tensors[name] for name in request.wrt)

    def fn(*xs: torch.Tensor) -> Any:
        return backend.call(spec, {**tensors, **dict(zip(request.wrt, xs))}, request.params)

    runners = [("gradcheck", torch.autograd.gradcheck)]
    if request.double_backward:
        runners.append(("gradgradcheck", torch.autograd.gradgradcheck))
    for name, runner in runners:
        extra: dict[str, Any] = {}
        if name == "gradgradcheck" and request.cotangent is not None:
            grad = torch.as_tensor(np.asarray(request.cotangent), dtype=torch.float64, device=request.device)
            extra["grad_outputs"] = (materialise(grad, request.cotangent_layout).requires_grad_(True),)
        try:
            # Fast mode compares one random projection u^T J v (a fixed generator: the same u and v
            # every run) instead of the whole Jacobian: two evaluations per input, not two per
            # element, and an error in any element of J still moves the projection. The backward
            # check compares every element against the oracle.
            runner(fn, leaves, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, fast_mode=True, **extra)
        except Exception as exc:  # noqa: BLE001 - GradcheckError or a backward that raised
            first = str(exc).strip().splitlines()
            return f"{name} failed: {' '.join(first[:6])}"
    return None
