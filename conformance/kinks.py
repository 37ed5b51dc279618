"""Subgradients at kinks: where an element sits exactly on a kink the spec declares, every derivative
in the kink's interval gives a valid gradient. The backward check accepts any gradient in the set
they span and says which element of it the backend chose."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

import numpy as np

from loss_conformance_reference.model import Kink

if TYPE_CHECKING:
    from loss_conformance.case import Case
    from loss_conformance.oracle import Oracle

# How close to an end of the interval a backend's derivative must be to be said to have chosen that end
# (as a fraction of the interval): float32 gradients and the least-squares fit are not exact.
END_SLACK = 0.02


@dataclass
class KinkSpan:
    """The oracle's gradients with every kink hit at its lowest derivative (``base``), and, for each
    kink, how the gradient moves when that kink's derivative goes to its highest (``steps``). The
    gradient is affine in each kink's derivative, so its elements range over [low, high] below."""

    kinks: tuple[Kink, ...]
    base: dict[str, np.ndarray]
    steps: tuple[dict[str, np.ndarray], ...]

    def low(self, name: str) -> np.ndarray:
        return self.base[name] + sum((np.minimum(s[name], 0.0) for s in self.steps), np.zeros_like(self.base[name]))

    def high(self, name: str) -> np.ndarray:
        return self.base[name] + sum((np.maximum(s[name], 0.0) for s in self.steps), np.zeros_like(self.base[name]))

    def nearest(self, name: str, values: np.ndarray) -> np.ndarray:
        """Element by element, the point of [low, high] closest to ``values``: the gradient to compare
        against (NaN where the oracle's is NaN; an end where the backend's is NaN and the oracle's not)."""
        low, high = self.low(name), self.high(name)
        got = np.asarray(values, dtype=np.float64)
        if got.shape != low.shape:
            return low
        with np.errstate(invalid="ignore"):
            inside = np.clip(got, low, high)
        return np.where(np.isnan(low) | np.isnan(high) | np.isnan(got), low, inside)

    def chosen(self, got: dict[str, np.ndarray]) -> dict[str, str]:
        """For each kink that moves the gradient, the derivative the backend's gradient ``got`` implies
        (a least-squares fit of the affine map), in words: ``"derivative 0 (left end)"``."""
        names = [n for n in self.base if n in got and np.shape(got[n]) == self.base[n].shape]
        if not names:
            return {}
        flat = lambda parts: np.concatenate([np.ravel(p) for p in parts])  # noqa: E731
        target = flat([np.asarray(got[n], dtype=np.float64) - self.base[n] for n in names])
        columns = np.stack([flat([s[n] for n in names]) for s in self.steps], axis=1)
        usable = np.isfinite(target) & np.all(np.isfinite(columns), axis=1)
        moving = [k for k in range(len(self.kinks)) if np.any(columns[usable, k] != 0)]
        if not moving or not usable.any():
            return {}
        t, *_ = np.linalg.lstsq(columns[usable][:, moving], target[usable], rcond=None)
        return {self.kinks[k].name: _described(self.kinks[k], float(fraction)) for k, fraction in zip(moving, t)}


def _described(kink: Kink, fraction: float) -> str:
    if abs(fraction) <= END_SLACK:
        return f"derivative {kink.low:g} (left end)"
    if abs(fraction - 1) <= END_SLACK:
        return f"derivative {kink.high:g} (right end)"
    derivative = round(kink.low + fraction * (kink.high - kink.low), 2) + 0.0  # + 0.0: no "-0"
    return f"derivative {derivative:g} (inside [{kink.low:g}, {kink.high:g}])"


def kink_span(oracle: "Oracle", case: "Case", reduction: str, cotangent: np.ndarray,
              wrt: tuple[str, ...]) -> KinkSpan | None:
    """The span of valid gradients of ``case``, or None where no element sits on a declared kink."""
    return _span(oracle, case, lambda slopes: oracle.vjp(case, reduction, cotangent, wrt, kink_slopes=slopes))


def tangent_span(oracle: "Oracle", case: "Case", reduction: str,
                 tangents: Mapping[str, np.ndarray]) -> KinkSpan | None:
    """The span of valid Jacobian-vector products (key ``tangent``), or None off the kinks."""
    return _span(oracle, case, lambda slopes: {"tangent": oracle.jvp(case, reduction, tangents, kink_slopes=slopes)})


def hvp_span(oracle: "Oracle", case: "Case", reduction: str, cotangent: np.ndarray,
             tangents: Mapping[str, np.ndarray]) -> KinkSpan | None:
    """The span of valid Hessian-vector products, or None off the kinks: a kink's derivative s scales
    the second derivative of its ``at`` (s * H t), so these move with the convention too."""
    return _span(oracle, case, lambda slopes: oracle.hvp(case, reduction, cotangent, tangents, kink_slopes=slopes))


def _span(oracle: "Oracle", case: "Case",
          derivative: Callable[[dict[str, float]], dict[str, np.ndarray]]) -> KinkSpan | None:
    hit = oracle.kinks_hit(case)
    if not hit:
        return None
    kinks = tuple(k for k in oracle.spec.variant(case.variant).kinks if k.name in hit)
    lows = {k.name: k.low for k in kinks}
    base = derivative(lows)
    steps = []
    for kink in kinks:
        moved = derivative({**lows, kink.name: kink.high})
        steps.append({n: np.where(moved[n] == base[n], 0.0, moved[n] - base[n]) for n in base})
    return KinkSpan(kinks, base, tuple(steps))


def moves_gradient(oracle: "Oracle", case: "Case", reduction: str, kink: Kink, wrt: tuple[str, ...]) -> bool:
    """Whether an element of ``case`` sits on ``kink`` where the loss takes it: the gradient of the
    summed output moves with the kink's derivative (a hinge at its kink, but not one that a ``where``
    leaves out)."""
    if not wrt or kink.name not in oracle.kinks_hit(case):
        return False
    expected, _ = oracle.forward(case, (reduction,))
    ones = np.ones(np.shape(expected[reduction]))
    low, high = (oracle.vjp(case, reduction, ones, wrt, kink_slopes={kink.name: end}) for end in (kink.low, kink.high))
    return any(not np.array_equal(low[n], high[n], equal_nan=True) for n in wrt)
