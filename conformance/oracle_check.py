"""The oracle's gradients checked against a source that does not depend on the torch under test.

The oracle differentiates the spec's formula by torch autograd in float64, so a change in the
backward of a primitive the formula uses (``where``, ``abs``, a norm) would move the oracle and a
torch backend together, unseen. Its forward, though, is evaluated in NumPy. On the gradcheck
check's smooth interior points, the oracle's vector-Jacobian product is therefore compared with
a fourth-order central difference of that NumPy forward along a random direction.
"""
from __future__ import annotations

import zlib
from dataclasses import replace

import numpy as np

from loss_conformance.case import Case
from loss_conformance.oracle import Oracle
from loss_conformance.tensors import upcast
from loss_conformance_reference.evaluate import evaluate

# Points are moved onto a grid of 2^-24 and directions are multiples of 2^-8, so every point of
# the stencil, x + k 2^-16 v, is exact in float64 (below 2^28): the difference then carries only
# the forward's own rounding, not the inputs'. The step keeps the stencil (+-2 steps) 30 times
# closer to the point than the 1e-3 by which the specs' smooth_when keep gradcheck from a kink.
GRID = 2.0 ** -24
STEP = 2.0 ** -16
# Agreement asked of the two: far looser than their errors (truncation ~ step^4; rounding of each
# evaluation, ~ eps times the size of its terms (the loss, the spec's error magnitude), divided by
# the step; the change between steps h and 2h), far tighter than any change of a primitive's
# derivative (a factor, a sign, a branch).
GRADIENT_RTOL = 1e-6
ROUNDING = 1e-13
SPREAD = 4.0


class OracleDisagrees(Exception):
    """The oracle's autograd gradient and the finite difference of its NumPy forward differ: the
    harness cannot grade gradients in this run (status ``error``, never the backend's fault)."""

    def __init__(self, message: str, case: Case) -> None:
        super().__init__(message)
        self.case = case


def check_oracle_gradient(oracle: Oracle, case: Case, reduction: str, wrt: tuple[str, ...]) -> None:
    """Raise ``OracleDisagrees`` where d/dt <u, loss(x + t v)> at t = 0 by finite differences of
    the NumPy forward differs from <u, J v> from the oracle's autograd (u, v seeded by the case)."""
    if not wrt:
        return
    rng = np.random.default_rng(zlib.crc32(repr(case.describe()).encode()))
    point = replace(case, inputs={**case.inputs, **{name: _on_grid(case.inputs[name]) for name in wrt}})
    outputs, magnitude = oracle.forward(point, (reduction,))
    base = outputs[reduction]
    if not np.all(np.isfinite(base)):
        return
    cotangent = rng.uniform(-1.0, 1.0, size=base.shape)
    directions = {name: rng.integers(-256, 257, size=np.shape(case.inputs[name])) / 256.0 for name in wrt}
    grads = oracle.vjp(point, reduction, cotangent, wrt)
    autograd = sum(float(np.sum(grads[name] * directions[name])) for name in wrt)
    size = sum(float(np.sum(np.abs(grads[name] * directions[name]))) for name in wrt)
    terms = float(np.sum(np.abs(cotangent * np.broadcast_to(np.abs(magnitude[reduction]), base.shape))))
    along: dict[int, float] = {}
    for k in (-4, -2, -1, 1, 2, 4):
        values = _values(oracle, point, {name: point.inputs[name] + k * STEP * directions[name] for name in wrt},
                         reduction)
        along[k] = float(np.sum(cotangent * values))
        terms = max(terms, float(np.sum(np.abs(cotangent * values))))

    def difference(h: int) -> float:  # fourth order: the error is O(step^4)
        return (along[-2 * h] - 8 * along[-h] + 8 * along[h] - along[2 * h]) / (12 * h * STEP)

    fine, coarse = difference(1), difference(2)
    allowed = GRADIENT_RTOL * size + ROUNDING * terms / STEP + SPREAD * abs(fine - coarse)
    if not np.isfinite(fine) or abs(fine - autograd) > allowed:
        raise OracleDisagrees(
            f"the reference's gradient (torch autograd, float64) disagrees with finite differences of its "
            f"NumPy forward at a smooth point: <u, J v> = {autograd!r} by autograd, {fine!r} by a central "
            f"difference of step {STEP!r} (allowed {allowed:.3g}) for reduction '{reduction}'. The backward "
            f"of a primitive the spec's formula uses has changed in this torch (or the formula is not smooth "
            f"here): gradients cannot be graded in this run.", point)


def _on_grid(value: np.ndarray | None) -> np.ndarray | None:
    if value is None:
        return None
    value = np.asarray(value, dtype=np.float64)
    return np.where(np.abs(value) < 2.0 ** 28, np.round(value / GRID) * GRID, value)


def _values(oracle: Oracle, case: Case, moved: dict[str, np.ndarray | None], reduction: str) -> np.ndarray:
    with oracle.timings.in_reference():
        result = evaluate(oracle.spec, oracle.spec.variant(case.variant), upcast({**case.inputs, **moved}),
                          case.params, oracle.np_ctx, reductions=(reduction,))
    return np.asarray(result.outputs[reduction], dtype=np.float64)
