"""Element strategies for the value domains a spec can name.

Each domain has a *full* form, which aims at the edge cases on purpose (exact ties, probabilities
of exactly 0 and 1, logits of 1e4 and beyond), and an *interior* form for finite differences,
which stays clear of boundaries and overflow.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

from hypothesis import strategies as st

from conformance.precision import PRECISIONS, draw_width, representable_bounds
from reference_impl.model import RangeDomain

FloatFactory = Callable[[float, float], st.SearchStrategy[float]]


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``choices`` (weight, strategy), each drawn in proportion to its weight.

    ``st.one_of`` draws its branches evenly, so a domain's few special values would take as
    many draws as the whole range beside them. Shrinking goes towards the first choice.
    """
    table = tuple(strategy for weight, strategy in choices for _ in range(weight))
    if len(set(table)) == 1:
        return table[0]
    return st.integers(0, len(table) - 1).flatmap(table.__getitem__)


def float_factory(dtype: str) -> FloatFactory:
    """Floats of a range for ``dtype``. A half dtype's range is first clipped to its finite values
    and shrunk to values it holds (bfloat16 is drawn in float32 and rounded afterwards: rounding
    to nearest never leaves a range whose ends are bfloat16 values)."""
    width = draw_width(dtype)
    narrow = PRECISIONS[dtype].narrow

    def floats(low: float, high: float) -> st.SearchStrategy[float]:
        if narrow:
            low, high = representable_bounds(low, high, dtype)
        return st.floats(low, high, width=width, allow_nan=False, allow_infinity=False, allow_subnormal=False)

    return floats


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
    return st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5, -2.0]), _signed(f, 10), _signed(f, 1e3))


def _probability(f: FloatFactory) -> st.SearchStrategy[float]:
    return weighted((1, st.sampled_from([0.0, 1.0, 0.5])), (2, f(0.0, 1.0)))


def _logit(f: FloatFactory) -> st.SearchStrategy[float]:
    huge = st.sampled_from([1e4, -1e4, 3e4, -3e4, 1e5, -1e5])
    return st.one_of(f(-10, 10), huge, f(-1e5, 1e5), st.just(0.0))


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

INTERIOR: dict[str, Callable[[FloatFactory], st.SearchStrategy[float]]] = {
    "real": lambda f: f(-3.0, 3.0),
    "probability": lambda f: f(0.05, 0.95),
    "logit": lambda f: f(-5.0, 5.0),
    "weight": lambda f: f(0.25, 4.0),
    "positive": lambda f: f(0.1, 10.0),
    "sign": lambda f: st.sampled_from([-1.0, 1.0]),
    "log_probability": lambda f: f(-5.0, -0.1),
    "simplex": lambda f: f(0.05, 1.0),
}


def _range(domain: RangeDomain, f: FloatFactory, interior: bool) -> st.SearchStrategy[float]:
    if interior:
        low, high = domain.interior or (domain.low, domain.high)
        return f(low, high)
    values = f(domain.low, domain.high)
    return st.one_of(st.sampled_from(domain.special), values) if domain.special else values


@lru_cache(maxsize=None)
def element_strategy(domain: str | RangeDomain, dtype: str, interior: bool = False) -> st.SearchStrategy[float]:
    """Floats for ``dtype`` from ``domain`` (integer domains are drawn in ``strategies``). Special
    values beyond a half dtype's range (a logit of 1e5 in float16) are clipped when the array is
    rounded into the dtype (``precision.quantize``)."""
    if isinstance(domain, RangeDomain):
        return _range(domain, float_factory(dtype), interior)
    table = INTERIOR if interior else FULL
    if domain not in table:
        raise ValueError(f"no float strategy for domain '{domain}'")
    return table[domain](float_factory(dtype))
