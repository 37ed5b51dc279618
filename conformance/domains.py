"""Element strategies for the value domains a spec can name.

Each domain has a *full* form, which aims at the edge cases on purpose (exact ties, probabilities
of exactly 0 and 1, logits of 1e4 and beyond), and an *interior* form for finite differences,
which stays clear of boundaries and overflow.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

from conformance.precision import PRECISIONS, draw_width, representable_bounds
from reference_impl.model import RangeDomain



def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``choices`` (weight, strategy), each drawn in proportion to its weight.

    ``st.one_of`` draws its branches evenly, so a domain's few special values would take as
    many draws as the whole range beside them. Shrinking goes towards the first choice.
    """
    table = tuple(strategy for weight, strategy in choices for _ in range(weight))
    if len(set(table)) == 1:
        return table[0]
    return st.integers(0, len(table) - 1).flatmap(table.__getitem__)


class FloatFactory:
    """Floats for one dtype: ranges, log-uniform magnitudes and the bands around the thresholds
    where kernels switch formulas. A half dtype's ranges are first clipped to its finite values
    and shrunk to values it holds (bfloat16 is drawn in float32 and rounded afterwards: rounding
    to nearest never leaves a range whose ends are bfloat16 values)."""

    def __init__(self, dtype: str) -> None:
        precision = PRECISIONS[dtype]
        self.dtype, self.width, self.narrow = dtype, draw_width(dtype), precision.narrow
        self.storage = {16: np.float16, 32: np.float32, 64: np.float64}[self.width]
        self.max = precision.max
        # Where a stable kernel and a naive one part ways: exp overflows past log(max), exp(-x)
        # drops below the rounding unit past -log(eps) (log1p(exp(-x)) == 0, softplus(x) == x),
        # and squares (norms, MSE) overflow past sqrt(max); half of each is where a kernel that
        # doubles before exponentiating goes wrong.
        log_max, log_eps = float(np.log(precision.max)), float((precision.bits - 1) * np.log(2))
        self.thresholds = tuple(sorted({log_max, log_max / 2, log_eps, log_eps / 2, float(np.sqrt(precision.max))}))

    def __call__(self, low: float, high: float) -> st.SearchStrategy[float]:
        if self.narrow:
            low, high = representable_bounds(low, high, self.dtype)
        elif self.width == 32:  # the float32 values inside [low, high] (0.05 is none)
            low, high = float32_inside(low, high)
        return st.floats(low, high, width=self.width, allow_nan=False, allow_infinity=False, allow_subnormal=False)

    def log_uniform(self, smallest: float = 1.0, largest: float | None = None) -> st.SearchStrategy[float]:
        """Magnitudes spread evenly over the exponents from ``smallest`` to ``largest`` (the
        dtype's largest finite value by default), either sign: 1, 1e3 and 1e30 alike. From 1 up:
        small magnitudes are drawn by the ranges beside, and evenly spread exponents below 1
        would put one draw in twenty-five at TINY, where a float32 gradient's cancellation
        exceeds any tolerance (a cosine's gradient at |x| = 2^-10)."""
        top = np.log2(min(largest or self.max, self.max))
        return st.tuples(st.floats(float(np.log2(smallest)), float(top)), st.sampled_from([1.0, -1.0])).map(
            lambda es: es[1] * self._representable(es[0], power=True))

    def near_thresholds(self, limit: float | None = None) -> st.SearchStrategy[float]:
        """Values within 1/16 of one of the dtype's thresholds (at most ``limit``), either sign."""
        bands = [t for t in self.thresholds if limit is None or t <= limit]
        return st.tuples(st.sampled_from(bands), st.floats(-1 / 16, 1 / 16), st.sampled_from([1.0, -1.0])).map(
            lambda tds: tds[2] * self._representable(tds[0] * (1 + tds[1])))

    def rounded(self, values: tuple[float, ...] | list[float]) -> list[float]:
        """A spec's special values at the drawing width (1e-8 is no float32 value): Hypothesis
        refuses an array element its dtype cannot hold exactly, and older NumPy releases let it
        see the unrounded one. Finite values beyond the width saturate at its largest."""
        top = float(self.storage(self.max))
        return [float(self.storage(np.clip(v, -top, top))) if np.isfinite(v) else float(v) for v in values]

    def _representable(self, value: float, power: bool = False) -> float:
        """``value`` (or 2 ** ``value``) at the drawing width, at most the dtype's largest finite
        value (a half dtype's values are rounded into it when the array is complete)."""
        with np.errstate(over="ignore"):
            return float(min(self.storage(np.exp2(value) if power else value), self.storage(self.max)))


def float32_inside(low: float, high: float) -> tuple[float, float]:
    """[low, high] shrunk to the nearest float32 values inside it."""
    lo, hi = np.float32(low), np.float32(high)
    if float(lo) < low:
        lo = np.nextafter(lo, np.float32(np.inf))
    if float(hi) > high:
        hi = np.nextafter(hi, np.float32(-np.inf))
    return float(lo), float(hi)


# The smallest magnitude of an ordinary real value. Hypothesis draws about one float in ten of a
# range like [-10, 10] below 1e-3 (down to 1e-38); for a loss of real inputs such a value is
# either no edge case at all (an elementwise loss treats it as it treats 1) or a point where a
# float32 gradient is ill-conditioned beyond any fixed tolerance (a vector norm's cancellation
# costs about 6e-8 / |x|, 1e-3 at |x| = 6e-5), a false failure for every correct kernel. Exact 0
# stays an edge case, drawn on purpose; tiny values stay where a spec declares them (a range's
# special values, parameter domains such as eps).
TINY = 2.0 ** -10


def _signed(f: FloatFactory, high: float) -> st.SearchStrategy[float]:
    """Reals of magnitude in [TINY, high], either sign."""
    return st.one_of(f(TINY, high), f(-high, -TINY))


def _real(f: FloatFactory) -> st.SearchStrategy[float]:
    # Up to the eighth root of the largest finite value (65504 in float32, 1.3e38 in float64):
    # losses of real values multiply up to four of them before a square root (a cosine's
    # |x|^2 |y|^2, a norm of squared differences), and past that every float32 kernel that is not
    # written to rescale overflows alike. The thresholds below it are reached on purpose.
    top = f.max ** 0.125
    return weighted((2, st.sampled_from([0.0, 1.0, -1.0, 0.5, -2.0])), (3, _signed(f, 10)), (1, _signed(f, 1e3)),
                    (1, f.log_uniform(largest=top)), (1, f.near_thresholds(top)))


def _probability(f: FloatFactory) -> st.SearchStrategy[float]:
    return weighted((1, st.sampled_from([0.0, 1.0, 0.5])), (2, f(0.0, 1.0)))


def _logit(f: FloatFactory) -> st.SearchStrategy[float]:
    # Log-uniformly up to sqrt(max) (1.8e19 in float32), and the bands where exp and log1p switch
    # regimes. Every threshold lies far below; past sqrt(max) a loss is linear in its logit, and
    # what is left to see is whether a kernel's product of a logit with a weight or another logit
    # overflows on the way to a finite result, which no spec promises.
    top = float(np.sqrt(f.max))
    huge = st.sampled_from([v for v in (1e4, -1e4, 3e4, -3e4, 1e5, -1e5) if abs(v) <= f.max])
    return weighted((3, f(-10, 10)), (1, huge), (1, f(-1e5, 1e5) if f.max > 1e5 else f(-f.max, f.max)),
                    (1, st.just(0.0)), (2, f.log_uniform(largest=top)), (2, f.near_thresholds(top)))


def _weight(f: FloatFactory) -> st.SearchStrategy[float]:
    # Mostly weights other than 1 (a weight of 1 everywhere hides an ignored or misplaced weight);
    # 0 and 1 on purpose, each an eighth of the time.
    return weighted((1, st.just(1.0)), (1, st.just(0.0)), (6, f(0.25, 4.0)))


FULL: dict[str, Callable[[FloatFactory], st.SearchStrategy[float]]] = {
    "real": _real,
    "probability": _probability,
    "logit": _logit,
    "weight": _weight,
    "positive": lambda f: weighted((1, st.just(1.0)), (3, f(1e-3, 1e3))),
    "sign": lambda f: st.sampled_from([-1.0, 1.0]),
    "log_probability": lambda f: weighted((1, st.just(0.0)), (2, f(-30.0, 0.0))),
    "simplex": lambda f: weighted((1, st.sampled_from([0.0, 1.0])), (2, f(0.0, 1.0))),
}

# Each domain's interior: its everyday values, clear of boundaries and overflow.
INTERIOR_RANGES: dict[str, tuple[float, float]] = {
    "real": (-3.0, 3.0),
    "probability": (0.05, 0.95),
    "logit": (-5.0, 5.0),
    "weight": (0.25, 4.0),
    "positive": (0.1, 10.0),
    "log_probability": (-5.0, -0.1),
    "simplex": (0.05, 1.0),
}
INTERIOR: dict[str, Callable[[FloatFactory], st.SearchStrategy[float]]] = {
    **{name: (lambda f, bounds=bounds: f(*bounds)) for name, bounds in INTERIOR_RANGES.items()},
    "sign": lambda f: st.sampled_from([-1.0, 1.0]),
}


def everyday_sampler(domain: str | RangeDomain) -> Callable[[np.random.Generator, int], np.ndarray]:
    """Float64 values spread evenly over the domain's interior by a NumPy generator: the bulk of
    a large array (``conformance.fill``), generic values with no exact ties among them."""
    if domain == "sign":
        return lambda rng, size: rng.choice(np.array([-1.0, 1.0]), size=size)
    if isinstance(domain, RangeDomain):
        low, high = domain.interior or (domain.low, domain.high)
    else:
        low, high = INTERIOR_RANGES[domain]
    return lambda rng, size: rng.uniform(low, high, size=size)


def _range(domain: RangeDomain, f: FloatFactory, interior: bool) -> st.SearchStrategy[float]:
    if interior:
        low, high = domain.interior or (domain.low, domain.high)
        return f(low, high)
    values = f(domain.low, domain.high)
    return st.one_of(st.sampled_from(f.rounded(domain.special)), values) if domain.special else values


@lru_cache(maxsize=None)
def element_strategy(domain: str | RangeDomain, dtype: str, interior: bool = False) -> st.SearchStrategy[float]:
    """Floats for ``dtype`` from ``domain`` (integer domains are drawn in ``strategies``). Special
    values beyond a half dtype's range (a logit of 1e5 in float16) are clipped when the array is
    rounded into the dtype (``precision.quantize``)."""
    if isinstance(domain, RangeDomain):
        return _range(domain, FloatFactory(dtype), interior)
    table = INTERIOR if interior else FULL
    if domain not in table:
        raise ValueError(f"no float strategy for domain '{domain}'")
    return table[domain](FloatFactory(dtype))
