"""Element strategies for the value domains a spec can name.

Each domain has a *full* form, which aims at the edge cases on purpose (exact ties, probabilities
of exactly 0 and 1, logits of 1e4 and beyond), and an *interior* form for finite differences,
which stays clear of boundaries and overflow.

A domain is a weighted mixture of parts (special values, ranges, log-uniform magnitudes, the bands
around the thresholds where kernels switch formulas). For each domain and dtype the mixture is
sampled once, from a fixed seed, into a *pool* of values ordered from the simplest (smallest
magnitude) up (``Pool``); an array element is then two bytes of the Hypothesis choices that hold
16 elements each (``loss_conformance.choices``). Three to five choices per element, as a mixture of
Hypothesis strategies takes, and then one per element, were most of what drawing a case cost;
shrinking the bytes towards 0 still shrinks the values towards 0.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
from hypothesis import strategies as st

from loss_conformance.choices import draw_indices
from loss_conformance.precision import PRECISIONS, draw_width, quantize, representable_bounds
from loss_conformance_reference.model import RangeDomain

_POOL_SEED = 20261130

# (generator, count) -> float64 values, each exactly representable at the domain's drawing width.
Sampler = Callable[[np.random.Generator, int], np.ndarray]


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``choices`` (weight, strategy), each drawn in proportion to its weight.

    ``st.one_of`` draws its branches evenly, so a domain's few special values would take as
    many draws as the whole range beside them. Shrinking goes towards the first choice.
    """
    table = tuple(strategy for weight, strategy in choices for _ in range(weight))
    if len(set(table)) == 1:
        return table[0]
    return st.integers(0, len(table) - 1).flatmap(table.__getitem__)


def weighted_values(*choices: tuple[int, Sequence[Any]]) -> st.SearchStrategy[Any]:
    """As ``weighted``, for branches that are short lists of values, in one Hypothesis choice
    instead of two nested ones: every value of a branch listed in proportion to its weight."""
    repeat = math.lcm(*(len(values) for _, values in choices))
    if repeat * sum(weight for weight, _ in choices) > 10_000:
        return weighted(*((weight, st.sampled_from(values)) for weight, values in choices))
    return st.sampled_from([value for weight, values in choices for value in values
                            for _ in range(weight * repeat // len(values))])


class FloatFactory:
    """Samplers of floats for one dtype: ranges, log-uniform magnitudes and the bands around the
    thresholds where kernels switch formulas. A half dtype's ranges are first clipped to its finite
    values and shrunk to values it holds; its values are rounded into it."""

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

    def __call__(self, low: float, high: float) -> Sampler:
        """Values in [low, high], as Hypothesis' floats draw them: spread evenly, with the range's
        ends and the simple values inside it (0, integers) now and then."""
        if self.narrow:
            low, high = representable_bounds(low, high, self.dtype)
        elif self.width == 32:  # the float32 values inside [low, high] (0.05 is none)
            low, high = float32_inside(low, high)
        if low > high:
            raise ValueError(f"no {self.dtype} value lies in [{low}, {high}]")
        simple = [v for v in (low, high, 0.0, 1.0, -1.0) if low <= v <= high]

        def sample(rng: np.random.Generator, size: int) -> np.ndarray:
            values = rng.uniform(low, high, size)
            nasty = rng.random(size) < 0.03
            values[nasty] = rng.choice(np.array(simple), int(nasty.sum()))
            return np.clip(self.round(values, flush_to=(low, high)), low, high)
        return sample

    def log_uniform(self, smallest: float = 1.0, largest: float | None = None) -> Sampler:
        """Magnitudes spread evenly over the exponents from ``smallest`` to ``largest`` (the
        dtype's largest finite value by default), either sign: 1, 1e3 and 1e30 alike. From 1 up:
        small magnitudes are drawn by the ranges beside, and evenly spread exponents below 1
        would put one draw in twenty-five at TINY, where a float32 gradient's cancellation
        exceeds any tolerance (a cosine's gradient at |x| = 2^-10)."""
        low, top = float(np.log2(smallest)), float(np.log2(min(largest or self.max, self.max)))
        return lambda rng, size: self._signed(rng, np.exp2(rng.uniform(low, top, size)))

    def near_thresholds(self, limit: float | None = None) -> Sampler:
        """Values within 1/16 of one of the dtype's thresholds (at most ``limit``), either sign."""
        bands = np.array([t for t in self.thresholds if limit is None or t <= limit])
        return lambda rng, size: self._signed(rng, rng.choice(bands, size) * (1 + rng.uniform(-1 / 16, 1 / 16, size)))

    def rounded(self, values: tuple[float, ...] | list[float]) -> list[float]:
        """A spec's special values at the drawing width (1e-8 is no float32 value). Finite values
        beyond the width saturate at its largest."""
        return [float(v) for v in self.round(np.asarray(values, dtype=np.float64))]

    def round(self, values: np.ndarray, flush_to: tuple[float, float] | None = None) -> np.ndarray:
        """``values`` at the drawing width (a half dtype's rounded into it), finite ones at most
        its largest; subnormals (which no drawing produces, as Hypothesis' floats do not) go to 0
        or, where 0 is outside ``flush_to``, to the nearest end of it."""
        top = float(self.storage(self.max))
        with np.errstate(over="ignore", invalid="ignore"):
            values = np.where(np.isfinite(values), np.clip(values, -top, top), values)
            out = (quantize(values, self.dtype) if self.narrow else values.astype(self.storage)).astype(np.float64)
        tiny = float(np.finfo(self.storage).tiny)
        sub = (out != 0) & (np.abs(out) < tiny)
        if sub.any():
            low, high = flush_to or (-np.inf, np.inf)
            out[sub] = 0.0 if low <= 0 <= high else (low if abs(low) < abs(high) else high)
        return out

    def _signed(self, rng: np.random.Generator, magnitudes: np.ndarray) -> np.ndarray:
        return self.round(np.where(rng.random(magnitudes.size) < 0.5, -1.0, 1.0) * magnitudes)


def constants(*values: float) -> Sampler:
    return lambda rng, size: rng.choice(np.array(values, dtype=np.float64), size)


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

Mixture = list[tuple[int, Sampler]]


def _signed(f: FloatFactory, high: float, weight: int) -> Mixture:
    """Reals of magnitude in [TINY, high], either sign, each with ``weight``."""
    return [(weight, f(TINY, high)), (weight, f(-high, -TINY))]


def _real(f: FloatFactory) -> Mixture:
    # Up to the eighth root of the largest finite value (65504 in float32, 1.3e38 in float64):
    # losses of real values multiply up to four of them before a square root (a cosine's
    # |x|^2 |y|^2, a norm of squared differences), and past that every float32 kernel that is not
    # written to rescale overflows alike. The thresholds below it are reached on purpose.
    top = f.max ** 0.125
    return [(4, constants(0.0, 1.0, -1.0, 0.5, -2.0)), *_signed(f, 10, 3), *_signed(f, 1e3, 1),
            (2, f.log_uniform(largest=top)), (2, f.near_thresholds(top))]


def _logit(f: FloatFactory) -> Mixture:
    # Log-uniformly up to sqrt(max) (1.8e19 in float32), and the bands where exp and log1p switch
    # regimes. Every threshold lies far below; past sqrt(max) a loss is linear in its logit, and
    # what is left to see is whether a kernel's product of a logit with a weight or another logit
    # overflows on the way to a finite result, which no spec promises.
    top = float(np.sqrt(f.max))
    huge = constants(*f.rounded([v for v in (1e4, -1e4, 3e4, -3e4, 1e5, -1e5) if abs(v) <= f.max]))
    return [(3, f(-10, 10)), (1, huge), (1, f(-1e5, 1e5) if f.max > 1e5 else f(-f.max, f.max)),
            (1, constants(0.0)), (2, f.log_uniform(largest=top)), (2, f.near_thresholds(top))]


FULL: dict[str, Callable[[FloatFactory], Mixture]] = {
    "real": _real,
    "probability": lambda f: [(1, constants(0.0, 1.0, 0.5)), (2, f(0.0, 1.0))],
    "logit": _logit,
    # Mostly weights other than 1 (a weight of 1 everywhere hides an ignored or misplaced weight);
    # 0 and 1 on purpose, each an eighth of the time.
    "weight": lambda f: [(1, constants(1.0)), (1, constants(0.0)), (6, f(0.25, 4.0))],
    "positive": lambda f: [(1, constants(1.0)), (3, f(1e-3, 1e3))],
    "sign": lambda f: [(1, constants(-1.0, 1.0))],
    "log_probability": lambda f: [(1, constants(0.0)), (2, f(-30.0, 0.0))],
    "simplex": lambda f: [(1, constants(0.0, 1.0)), (2, f(0.0, 1.0))],
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
INTERIOR: dict[str, Callable[[FloatFactory], Mixture]] = {
    **{name: (lambda f, bounds=bounds: [(1, f(*bounds))]) for name, bounds in INTERIOR_RANGES.items()},
    "sign": lambda f: [(1, constants(-1.0, 1.0))],
}


def everyday_sampler(domain: str | RangeDomain) -> Sampler:
    """Float64 values spread evenly over the domain's interior by a NumPy generator: the bulk of
    a large array (``loss_conformance.fill``), generic values with no exact ties among them."""
    if domain == "sign":
        return constants(-1.0, 1.0)
    if isinstance(domain, RangeDomain):
        low, high = domain.interior or (domain.low, domain.high)
    else:
        low, high = INTERIOR_RANGES[domain]
    return lambda rng, size: rng.uniform(low, high, size=size)


def _range(domain: RangeDomain, f: FloatFactory, interior: bool) -> Mixture:
    if interior:
        return [(1, f(*(domain.interior or (domain.low, domain.high))))]
    values = f(domain.low, domain.high)
    return [(1, constants(*f.rounded(domain.special))), (1, values)] if domain.special else [(1, values)]


# Buckets per pool, and values per bucket: one byte picks a bucket, and 65536 values make chance
# ties between the elements of an ordinary array rare (exact ties come on purpose: special values, ties_with).
BUCKETS = 256
_BUCKET = st.integers(0, BUCKETS - 1)


class Pool:
    """A domain's values in one dtype, ``BUCKETS`` x ``BUCKETS`` of them sampled once from its
    mixture (each part in proportion to its weight) from a fixed seed, sorted by magnitude into
    buckets, the simplest (smallest magnitude, positive first) in bucket 0.

    An array element is two bytes of the array's bytes choices (``loss_conformance.choices``): the
    first picks its bucket, the second its place in the bucket. The bytes are drawn evenly, so each
    part of the mixture gets its share of the draws; shrinking a bucket towards 0 shrinks the value
    towards the domain's simplest."""

    def __init__(self, mixture: Mixture, seed: int = _POOL_SEED) -> None:
        rng = np.random.default_rng(seed)
        size = BUCKETS * BUCKETS
        total = sum(weight for weight, _ in mixture)
        counts = [round(size * weight / total) for weight, _ in mixture]
        counts[-1] += size - sum(counts)
        values = np.concatenate([sampler(rng, count) for (_, sampler), count in zip(mixture, counts)])
        magnitude = np.where(np.isnan(values), np.inf, np.abs(values))
        buckets = values[np.lexsort((np.signbit(values), magnitude))].reshape(BUCKETS, BUCKETS)
        self.values = rng.permuted(buckets, axis=1)  # a bucket's values in no order of magnitude

    def array(self, draw: st.DrawFn, shape: tuple[int, ...]) -> np.ndarray:
        """Float64 values of this pool in ``shape``."""
        return self.values.reshape(-1)[draw_indices(draw, shape, BUCKETS * BUCKETS)]

    def strategy(self) -> st.SearchStrategy[float]:
        """One value of this pool."""
        return st.tuples(_BUCKET, _BUCKET).map(lambda bp: float(self.values[bp]))


@lru_cache(maxsize=None)
def element_pool(domain: str | RangeDomain, dtype: str, interior: bool = False) -> Pool:
    """The pool of ``domain``'s values in ``dtype`` (``interior``: its interior's); integer
    domains are drawn in ``strategies``. Special values beyond a half dtype's range (a logit of
    1e5 in float16) are drawn at its largest finite value."""
    f = FloatFactory(dtype)
    if isinstance(domain, RangeDomain):
        return Pool(_range(domain, f, interior))
    table = INTERIOR if interior else FULL
    if domain not in table:
        raise ValueError(f"no float strategy for domain '{domain}'")
    return Pool(table[domain](f))


def element_strategy(domain: str | RangeDomain, dtype: str, interior: bool = False) -> st.SearchStrategy[float]:
    """One float of ``domain`` in ``dtype``."""
    return element_pool(domain, dtype, interior).strategy()
