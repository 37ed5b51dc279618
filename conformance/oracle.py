"""The oracle: the spec evaluated in float64 on exactly the values the backend received."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from conformance.case import Case
from conformance.tensors import to_numpy64, to_tensors, upcast
from conformance.timing import Timings
from reference_impl.evaluate import build_env, evaluate
from reference_impl.formula import numpy_context, torch_context
from reference_impl.model import LossSpec


class Oracle:
    def __init__(self, spec: LossSpec, device: str, timings: Timings) -> None:
        self.spec = spec
        self.device = device
        self.timings = timings
        self.np_ctx = numpy_context()
        self.torch_ctx = torch_context(device)

    def forward(self, case: Case, reductions: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Float64 outputs and error magnitudes for each reduction (NumPy evaluation)."""
        with self.timings.in_reference():
            variant = self.spec.variant(case.variant)
            result = evaluate(self.spec, variant, upcast(case.inputs), case.params, self.np_ctx,
                              reductions=reductions, with_magnitude=True)
        return ({r: np.asarray(v, dtype=np.float64) for r, v in result.outputs.items()},
                {r: np.asarray(v, dtype=np.float64) for r, v in result.magnitude.items()})

    def vjp(self, case: Case, reduction: str, cotangent: np.ndarray,
            wrt: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Vector-Jacobian products of the float64 torch evaluation, by autograd."""
        with self.timings.in_reference():
            variant = self.spec.variant(case.variant)
            tensors = to_tensors(upcast(case.inputs), self.device, requires_grad=wrt)
            out = evaluate(self.spec, variant, tensors, case.params, self.torch_ctx,
                           reductions=(reduction,)).outputs[reduction]
            leaves = [tensors[name] for name in wrt]
            cot = torch.as_tensor(cotangent, dtype=torch.float64, device=self.device)
            grads = torch.autograd.grad(out, leaves, grad_outputs=cot, allow_unused=True) if out.requires_grad \
                else [None] * len(leaves)
            return {name: (to_numpy64(g) if g is not None else np.zeros(leaf.shape))
                    for name, g, leaf in zip(wrt, grads, leaves)}

    def env(self, case: Case) -> dict[str, Any]:
        """Inputs (float64), parameters and dims of ``case``: the scope of predicates."""
        variant = self.spec.variant(case.variant)
        env, _ = build_env(self.spec, variant, upcast(case.inputs), case.params, self.np_ctx)
        layout = next(lay for lay in variant.layouts if lay.name == case.layout)
        for name, axis in layout.unbatched.items():  # predicates see the inputs as the caller passed them
            env[name] = np.squeeze(env[name], axis=axis)
        return env
