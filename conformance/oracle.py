"""The oracle: the spec evaluated in float64 on exactly the values the backend received."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from loss_conformance.case import Case
from loss_conformance.tensors import to_numpy64, to_tensors, upcast
from loss_conformance.timing import Timings
from loss_conformance_reference.chunks import CHUNK_ELEMENTS, evaluate_chunk, evaluate_in_chunks, plan_split, row_bindings
from loss_conformance_reference.evaluate import Evaluation, build_env, evaluate
from loss_conformance_reference.formula import numpy_context, torch_context
from loss_conformance_reference.model import LossSpec, Variant


class Oracle:
    """Values and derivatives of the spec in float64. Inputs of more than ``chunk_elements``
    elements are evaluated in chunks of rows where the formula keeps its rows apart
    (``loss_conformance_reference.chunks``): values and vector-Jacobian products then hold one chunk's
    intermediates (and autograd graph) at a time; None evaluates in one piece."""

    def __init__(self, spec: LossSpec, device: str, timings: Timings, chunk_elements: int | None = CHUNK_ELEMENTS) -> None:
        self.spec = spec
        self.chunk_elements = chunk_elements
        self.device = device
        self.timings = timings
        self.np_ctx = numpy_context()
        self.torch_ctx = torch_context(device)

    def forward(self, case: Case, reductions: tuple[str, ...]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Float64 outputs and error magnitudes for each reduction (NumPy evaluation)."""
        with self.timings.in_reference():
            variant = self.spec.variant(case.variant)
            result = self._evaluate_numpy(variant, case, reductions)
        return ({r: np.asarray(v, dtype=np.float64) for r, v in result.outputs.items()},
                {r: np.asarray(v, dtype=np.float64) for r, v in result.magnitude.items()})

    def gradient_magnitude(self, case: Case, reduction: str) -> float | None:
        """The largest finite size of the terms a gradient element sums, per unit of incoming
        gradient, where the spec states it (``gradient_magnitude``); None where it does not."""
        variant = self.spec.variant(case.variant)
        if reduction not in variant.gradient_magnitude:
            return None
        with self.timings.in_reference():
            result = self._evaluate_numpy(variant, case, (reduction,), gradient=True)
        sizes = np.abs(np.asarray(result.magnitude[reduction], dtype=np.float64))
        sizes = sizes[np.isfinite(sizes)]
        return float(sizes.max()) if sizes.size else None

    def vjp(self, case: Case, reduction: str, cotangent: np.ndarray,
            wrt: tuple[str, ...], compare_in: Any = None,
            kink_slopes: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
        """Vector-Jacobian products of the float64 torch evaluation, by autograd; with ``compare_in``
        (a torch dtype), the formula's comparisons are made on values rounded into it; with
        ``kink_slopes``, the named kinks' derivatives where an element sits on them."""
        with self.timings.in_reference():
            # The kinks' pinned derivatives are applied in one piece (a tie is rarely in a large case).
            chunked = self._chunked_vjp(case, reduction, cotangent, wrt, compare_in) if not kink_slopes else None
            if chunked is not None:
                return chunked
            out, leaves = self._evaluate(case, reduction, wrt, compare_in, kink_slopes)
            grads = torch.autograd.grad(out, leaves, grad_outputs=self._tensor(cotangent), allow_unused=True) if out.requires_grad \
                else [None] * len(leaves)
            return {name: (to_numpy64(g) if g is not None else np.zeros(leaf.shape))
                    for name, g, leaf in zip(wrt, grads, leaves)}

    def jvp(self, case: Case, reduction: str, tangents: Mapping[str, np.ndarray],
            kink_slopes: Mapping[str, float] | None = None) -> np.ndarray:
        """The loss's Jacobian-vector product for ``tangents`` (one per differentiable input), in
        float64 by reverse mode twice rather than by the forward-mode AD under test; with
        ``kink_slopes``, the named kinks' derivatives where an element sits on them."""
        with self.timings.in_reference():
            out, leaves = self._evaluate(case, reduction, tuple(tangents), kink_slopes=kink_slopes)
            return to_numpy64(_jvp_by_vjp(out, leaves, [self._tensor(tangents[n]) for n in tangents]))

    def jvp_magnitude(self, case: Case, reduction: str, tangents: Mapping[str, np.ndarray]) -> float:
        """The size of the terms a Jacobian-vector product sums: sum_k |J_ik t_k|, the largest over
        the output's elements (finite ones). Where the terms cancel (a logit of 1e4 against target
        tangents of +1 and -1), a kernel that rounds each term in a half dtype is off by their
        rounding, which the result's size says nothing of: the tolerance's atol scales with this,
        as the forward check's scales with the spec's error magnitude."""
        with self.timings.in_reference():
            out, leaves = self._evaluate(case, reduction, tuple(tangents))
            if not out.requires_grad:
                return 1.0
            flat = out.reshape(-1)
            sizes = [self._tensor(tangents[n]).abs() for n in tangents]
            worst = 0.0
            for i in range(flat.numel()):
                grads = torch.autograd.grad(flat[i], leaves, retain_graph=True, allow_unused=True)
                total = sum(float((g.abs() * t).sum()) for g, t in zip(grads, sizes) if g is not None)
                if np.isfinite(total):
                    worst = max(worst, total)
            return worst

    def hvp(self, case: Case, reduction: str, cotangent: np.ndarray, tangents: Mapping[str, np.ndarray],
            kink_slopes: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
        """Hessian-vector products of the loss weighted by ``cotangent`` and summed, w.r.t. each input
        of ``tangents``: the Jacobian of its autograd gradient times the tangents, by reverse mode;
        with ``kink_slopes``, the named kinks' derivatives where an element sits on them."""
        with self.timings.in_reference():
            wrt = tuple(tangents)
            out, leaves = self._evaluate(case, reduction, wrt, kink_slopes=kink_slopes)
            total = (out * self._tensor(cotangent)).sum()
            grads = torch.autograd.grad(total, leaves, create_graph=True, allow_unused=True) if total.requires_grad \
                else [None] * len(leaves)
            grads = [g if g is not None else torch.zeros_like(leaf) for g, leaf in zip(grads, leaves)]
            ts = [self._tensor(tangents[n]) for n in wrt]
            return {name: to_numpy64(_jvp_by_vjp(g, leaves, ts)) for name, g in zip(wrt, grads)}

    def kinks_hit(self, case: Case) -> frozenset[str]:
        """The kinks of ``case``'s variant that one of its elements sits exactly on (in float64)."""
        variant = self.spec.variant(case.variant)
        if not variant.kinks:
            return frozenset()
        with self.timings.in_reference():
            return evaluate(self.spec, variant, upcast(case.inputs), case.params, self.np_ctx, find_kinks=True).kinks_hit

    def _evaluate(self, case: Case, reduction: str, wrt: tuple[str, ...], compare_in: Any = None,
                  kink_slopes: Mapping[str, float] | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        variant = self.spec.variant(case.variant)
        tensors = to_tensors(upcast(case.inputs), self.device, requires_grad=wrt)
        ctx = self.torch_ctx.comparing_in(compare_in) if compare_in is not None else self.torch_ctx
        out = evaluate(self.spec, variant, tensors, case.params, ctx, reductions=(reduction,),
                       kink_slopes=kink_slopes).outputs
        return out[reduction], [tensors[name] for name in wrt]  # type: ignore[misc]

    def _evaluate_numpy(self, variant: Variant, case: Case, reductions: tuple[str, ...], gradient: bool = False) -> Evaluation:
        inputs = upcast(case.inputs)
        if not self._may_chunk(case):
            return evaluate(self.spec, variant, inputs, case.params, self.np_ctx, reductions, True, gradient=gradient)
        return evaluate_in_chunks(self.spec, variant, inputs, case.params, self.np_ctx, reductions, True,
                                  gradient=gradient, chunk_elements=self.chunk_elements)

    def _may_chunk(self, case: Case) -> bool:
        """Whether an input is larger than a chunk (the others are evaluated in one piece at once)."""
        sizes = [np.size(v) for v in case.inputs.values() if v is not None]
        return self.chunk_elements is not None and max(sizes, default=0) > self.chunk_elements

    def _chunked_vjp(self, case: Case, reduction: str, cotangent: np.ndarray, wrt: tuple[str, ...],
                     compare_in: Any) -> dict[str, np.ndarray] | None:
        """The vector-Jacobian product in chunks of rows, or None where the evaluation is not cut.

        The bindings kept from the chunks are evaluated with no graph, then taken as leaves of the
        rest of the formula (the reduction), whose backward pass gives their cotangents; each
        chunk is then evaluated again, with its graph, and its backward pass from those
        cotangents adds its rows' share to the inputs' gradients."""
        if not self._may_chunk(case):
            return None
        variant = self.spec.variant(case.variant)
        ctx = self.torch_ctx.comparing_in(compare_in) if compare_in is not None else self.torch_ctx
        tensors = to_tensors(upcast(case.inputs), self.device, requires_grad=wrt)
        env, layout = build_env(self.spec, variant, tensors, case.params, ctx)
        split = plan_split(variant, layout, env, self.chunk_elements)
        found = row_bindings(variant, env, split, ctx) if split is not None else None
        if found is None:
            return None
        split, kept = found
        leaves = {n: v.detach().requires_grad_(True) for n, v in kept.items() if v.is_floating_point()}
        out = evaluate(self.spec, variant, tensors, case.params, ctx, reductions=(reduction,),
                       precomputed={**kept, **leaves}, skip=frozenset(split.chunked)).outputs[reduction]
        inputs = [tensors[name] for name in wrt]
        grads = {name: torch.zeros_like(t) for name, t in zip(wrt, inputs)}
        if not out.requires_grad:
            return {name: to_numpy64(g) for name, g in grads.items()}
        direct = torch.autograd.grad(out, [*inputs, *leaves.values()], grad_outputs=self._tensor(cotangent),
                                     allow_unused=True)
        for name, g in zip(wrt, direct):
            if g is not None:
                grads[name] += g
        upstream = dict(zip(leaves, direct[len(inputs):]))
        upstream = {n: g for n, g in upstream.items() if g is not None}
        for start, stop in split.chunks():
            scope = dict(env)
            parts = {name: (tensors[name][start:stop] if name in split.cut else tensors[name]).detach().requires_grad_(True)
                     for name in wrt}
            scope.update(parts)
            values = evaluate_chunk(variant, scope, split, start, stop, ctx)
            if values is None:  # not as the first pass saw it: the caller evaluates in one piece
                return None
            outs = [values[n] for n in upstream if values[n].requires_grad]
            if not outs:
                continue
            pieces = torch.autograd.grad(outs, list(parts.values()),
                                         [upstream[n][start:stop] for n in upstream if values[n].requires_grad],
                                         allow_unused=True)
            for name, g in zip(parts, pieces):
                if g is not None:
                    target = grads[name][start:stop] if name in split.cut else grads[name]
                    target += g
        return {name: to_numpy64(g) for name, g in grads.items()}

    def _tensor(self, value: np.ndarray) -> torch.Tensor:
        value = np.asarray(value, dtype=np.float64)
        if not value.flags.writeable:  # a broadcast view: torch would share memory it must not write
            value = value.copy()
        return torch.as_tensor(value, device=self.device)

    def scope(self, variant: Variant, inputs: Mapping[str, np.ndarray], params: Mapping[str, Any],
              bindings: bool = False) -> dict[str, Any]:
        """Inputs (float64), parameters and dims as ``variant``'s formula sees them; with ``bindings``,
        its named values too."""
        env, _ = build_env(self.spec, variant, upcast(inputs), params, self.np_ctx)
        if bindings:
            with self.timings.in_reference(), np.errstate(all="ignore"):
                for name, formula in variant.bindings:
                    env[name] = formula.evaluate(env, self.np_ctx)
        return env

    def env(self, case: Case, bindings: bool = False) -> dict[str, Any]:
        """Inputs (float64), parameters and dims of ``case``: the scope of predicates; with
        ``bindings``, the formula's named values too (as the formula sees them, batched)."""
        variant = self.spec.variant(case.variant)
        env = self.scope(variant, case.inputs, case.params, bindings)
        layout = next(lay for lay in variant.layouts if lay.name == case.layout)
        for name, axis in layout.unbatched.items():  # predicates see the inputs as the caller passed them
            env[name] = np.squeeze(env[name], axis=axis)
        return env


def _jvp_by_vjp(out: torch.Tensor, leaves: list[torch.Tensor], tangents: list[torch.Tensor]) -> torch.Tensor:
    """J t of ``out`` w.r.t. ``leaves``: the vector-Jacobian product J^T u is linear in u, so its
    gradient w.r.t. u, dotted with t, is J t (the "double-vjp" trick)."""
    if not out.requires_grad:
        return torch.zeros_like(out)
    u = torch.zeros_like(out, requires_grad=True)
    vjps = torch.autograd.grad(out, leaves, u, create_graph=True, allow_unused=True)
    dot = sum(((g * t).sum() for g, t in zip(vjps, tangents) if g is not None), torch.zeros((), dtype=out.dtype, device=out.device))
    if not dot.requires_grad:
        return torch.zeros_like(out)
    (jt,) = torch.autograd.grad(dot, u, allow_unused=True)
    return jt if jt is not None else torch.zeros_like(out)
