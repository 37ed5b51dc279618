"""A copy-paste Python snippet that replays one failing case outside the harness."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from loss_conformance.case import LISTED_ELEMENTS, Case
from loss_conformance_reference.catalogue import is_shipped
from loss_conformance_reference.model import LossSpec

_TEMPLATE = '''import numpy
import torch
from loss_conformance.backends import load_backend
from loss_conformance.layouts import MemoryLayout, materialise
from loss_conformance_reference import {spec_import}, torch_loss

{tensors}
inputs = {{{input_names}}}
layouts = {{{layouts}}}  # how each input lies in memory (contiguous unless named here)
params = {params!r}
backend = load_backend({backend!r})
spec = {spec_source}


def fresh():
    """A copy of the inputs per call, in the same memory layout: a backend that writes into its inputs
    cannot change the expected value."""
    return {{name: materialise(value.detach().clone(), layouts.get(name)).requires_grad_(value.requires_grad)
            for name, value in inputs.items()}}


backend_inputs, reference_inputs = fresh(), fresh()
actual = backend.call(spec, backend_inputs, params)
expected = torch_loss(spec, reference_inputs, params, variant={variant!r})
print("actual:  ", actual)
print("expected:", expected)
'''


def save_arrays(case: Case, directory: Path, label: str) -> str:
    """Write the case's arrays (inputs, cotangent) to a ``.npz`` file in ``directory``; its path.

    For counterexamples of millions of elements, which a report cannot list. The values are exact:
    a bfloat16 case's arrays hold bfloat16 values in float32, which the snippet casts back."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (re.sub(r"[^A-Za-z0-9_.-]+", "_", label) + ".npz")
    # Uncompressed: a large array is mostly seeded everyday values, random bits that deflate shrinks by
    # 8% at twelve times the time (5 s of a failing large check's 15 s, for 3 arrays of 2^24 values).
    np.savez(path, **case.arrays())
    return str(path)


def _source(name: str, value: np.ndarray, saved: str | None) -> str:
    """The expression that rebuilds ``value``: its list, or its entry in the saved file."""
    if saved is not None and value.size > LISTED_ELEMENTS:
        return f"saved[{name!r}]"
    if value.size == 0:  # the list of a (0, 2, 0) array is [], which has lost its shape
        return f"numpy.empty({value.shape!r})"
    return repr(value.tolist())


def _spec_source(case: Case, spec: LossSpec | None) -> tuple[str, str]:
    """The import and the expression that give the snippet its spec: a shipped loss by its id, a
    user's spec (``--spec``) from its file, by absolute path, so the snippet runs from anywhere."""
    if spec is None or is_shipped(spec):
        return "shipped_specs", f"shipped_specs()[{case.loss!r}]"
    return "load_spec", f"load_spec({str(spec.path.resolve())!r})"


def snippet(case: Case, backend: str, device: str, check: str, wrt: tuple[str, ...] = (),
            saved: str | None = None, spec: LossSpec | None = None) -> str:
    """Python that replays ``case`` on ``backend`` and on the reference of ``spec`` (the shipped spec
    of ``case.loss`` when None)."""
    spec_import, spec_source = _spec_source(case, spec)
    lines = [f"saved = numpy.load({saved!r})  # the arrays too large to list here"] if saved else []
    for name, value in case.present_inputs().items():
        dtype = "torch.int64" if value.dtype.kind in "iu" else f"torch.{case.dtype_of(value)}"
        grad = ", requires_grad=True" if name in wrt else ""
        source = _source(name, value, saved)
        lines.append(f"{name} = torch.tensor({source}, dtype={dtype}, device={device!r}{grad})")
    text = _TEMPLATE.format(tensors="\n".join(lines), input_names=", ".join(f"{n!r}: {n}" for n in case.present_inputs()),
                            layouts=", ".join(f"{n!r}: {v.expression()}" for n, v in case.layouts.items()),
                            params=case.params, backend=backend, variant=case.variant,
                            spec_import=spec_import, spec_source=spec_source)
    if check in ("backward", "large") and case.cotangent is not None:
        layout = case.cotangent_layout.expression() if case.cotangent_layout else "None"
        text += (f"cotangent = materialise(torch.tensor({_source('cotangent', case.cotangent, saved)}, "
                 f"dtype=actual.dtype), {layout})\n"
                 "print(torch.autograd.grad(actual, [v for v in backend_inputs.values() if v.requires_grad], cotangent))\n"
                 "print(torch.autograd.grad(expected, [v for v in reference_inputs.values() if v.requires_grad],\n"
                 "                          cotangent.to(expected.dtype)))\n")
    return text
