"""Element strategies for the value domains a spec can name.

Each domain has a *full* form, which aims at the edge cases on purpose (exact ties, probabilities
of exactly 0 and 1, logits of 1e4 and beyond), and an *interior* form for finite differences,
which stays clear of boundaries and overflow.
"""
from __future__ import annotations

from typing import Callable

from hypothesis import strategies as st

from reference_impl.model import RangeDomain

FloatFactory = Callable[[float, float], st.SearchStrategy[float]]


def float_factory(width: int) -> FloatFactory:
    def floats(low: float, high: float) -> st.SearchStrategy[float]:
        return st.floats(low, high, width=width, allow_nan=False, allow_infinity=False, allow_subnormal=False)

    return floats


def _real(f: FloatFactory) -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5, -2.0]), f(-10, 10), f(-1e3, 1e3))


def _probability(f: FloatFactory) -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from([0.0, 1.0, 0.5]), f(0.0, 1.0))


def _logit(f: FloatFactory) -> st.SearchStrategy[float]:
    huge = st.sampled_from([1e4, -1e4, 3e4, -3e4, 1e5, -1e5])
    return st.one_of(f(-10, 10), huge, f(-1e5, 1e5), st.just(0.0))


def _weight(f: FloatFactory) -> st.SearchStrategy[float]:
    return st.one_of(st.just(0.0), st.just(1.0), f(0.25, 4.0))


FULL: dict[str, Callable[[FloatFactory], st.SearchStrategy[float]]] = {
    "real": _real,
    "probability": _probability,
    "logit": _logit,
    "weight": _weight,
    "positive": lambda f: st.one_of(st.just(1.0), f(1e-3, 1e3)),
    "sign": lambda f: st.sampled_from([-1.0, 1.0]),
    "log_probability": lambda f: st.one_of(st.just(0.0), f(-30.0, 0.0)),
    "simplex": lambda f: st.one_of(st.sampled_from([0.0, 1.0]), f(0.0, 1.0)),
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


def element_strategy(domain: str | RangeDomain, width: int, interior: bool = False) -> st.SearchStrategy[float]:
    """Floats of ``width`` bits from ``domain`` (integer domains are drawn in ``strategies``)."""
    if isinstance(domain, RangeDomain):
        return _range(domain, float_factory(width), interior)
    table = INTERIOR if interior else FULL
    if domain not in table:
        raise ValueError(f"no float strategy for domain '{domain}'")
    return table[domain](float_factory(width))
