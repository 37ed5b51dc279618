"""The formula language: NumPy and torch agree on every primitive (gradients through torch autograd are
in test_formula_gradients.py, refusals in test_formula_security.py)."""
from __future__ import annotations

import ast
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from loss_conformance_reference.errors import FormulaError
from loss_conformance_reference.formula import compile_formula, numpy_context, torch_context
from loss_conformance_reference.formula.primitives import CONSTANTS, PRIMITIVES

NP = numpy_context()
TORCH = torch_context("cpu")
NAMES = ("x", "y", "p", "idx")


def run(text, env, ctx, names=NAMES):
    return compile_formula(text, names).evaluate(env, ctx)


def as_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().numpy()
    return np.asarray(value)


# ---------------------------------------------------------------------------------------------
# NumPy and torch (both float64) agree on every primitive, and with an independent NumPy version
# ---------------------------------------------------------------------------------------------

def _lse(a, axis=None):
    return np.log(np.sum(np.exp(a), axis=axis))


# formula over x (any real), y (another real array of the same shape), p (in (0, 1]) and idx
# (indices in [0, 3) of the same shape), and an independent NumPy expression for its value (or
# None where agreement between the two evaluations is the check).
PRIMITIVE_CASES = {
    "where": ("where(x > y, x, y)", lambda x, y, p, i: np.where(x > y, x, y)),
    "clamp": ("clamp(x, min=-0.5, max=1.5)", lambda x, y, p, i: np.clip(x, -0.5, 1.5)),
    "clamp_min": ("clamp(x, min=y)", lambda x, y, p, i: np.maximum(x, y)),
    "maximum": ("maximum(x, y)", lambda x, y, p, i: np.maximum(x, y)),
    "minimum": ("minimum(x, y)", lambda x, y, p, i: np.minimum(x, y)),
    "abs": ("abs(x)", lambda x, y, p, i: np.abs(x)),
    "sign": ("sign(x)", lambda x, y, p, i: np.sign(x)),
    "exp": ("exp(x)", lambda x, y, p, i: np.exp(x)),
    "log": ("log(p)", lambda x, y, p, i: np.log(p)),
    "log1p": ("log1p(p)", lambda x, y, p, i: np.log1p(p)),
    "expm1": ("expm1(x)", lambda x, y, p, i: np.expm1(x)),
    "sqrt": ("sqrt(p)", lambda x, y, p, i: np.sqrt(p)),
    "tanh": ("tanh(x)", lambda x, y, p, i: np.tanh(x)),
    "sigmoid": ("sigmoid(x)", lambda x, y, p, i: 1.0 / (1.0 + np.exp(-x))),
    "log_sigmoid": ("log_sigmoid(x)", lambda x, y, p, i: -np.log1p(np.exp(-x))),
    "softplus": ("softplus(x)", lambda x, y, p, i: np.log1p(np.exp(x))),
    "xlogy": ("xlogy(p, p)", lambda x, y, p, i: p * np.log(p)),
    "logsumexp": ("logsumexp(x, axis=1)", lambda x, y, p, i: _lse(x, axis=1)),
    "logsumexp_all": ("logsumexp(x)", lambda x, y, p, i: _lse(x)),
    "logsumexp_keepdims": ("logsumexp(x, axis=0, keepdims=True)",
                           lambda x, y, p, i: np.log(np.sum(np.exp(x), axis=0, keepdims=True))),
    "log_softmax": ("log_softmax(x, axis=1)", lambda x, y, p, i: x - _lse(x, axis=1)[:, None]),
    "softmax": ("softmax(x, axis=0)", lambda x, y, p, i: np.exp(x) / np.exp(x).sum(axis=0)),
    "sum": ("sum(x)", lambda x, y, p, i: np.sum(x)),
    "sum_axis": ("sum(x, axis=0)", lambda x, y, p, i: np.sum(x, axis=0)),
    "sum_axes": ("sum(x, axis=(0, 1), keepdims=True)", lambda x, y, p, i: np.sum(x, keepdims=True)),
    "sum_bool": ("sum(x > y)", lambda x, y, p, i: float(np.sum(x > y))),
    "mean": ("mean(x, axis=1)", lambda x, y, p, i: np.mean(x, axis=1)),
    "prod": ("prod(p, axis=1)", lambda x, y, p, i: np.prod(p, axis=1)),
    "amax": ("amax(x, axis=1)", lambda x, y, p, i: np.max(x, axis=1)),
    "amin": ("amin(x)", lambda x, y, p, i: np.min(x)),
    "all": ("all(x > y, axis=0)", lambda x, y, p, i: np.all(x > y, axis=0)),
    "any": ("any(x > y)", lambda x, y, p, i: np.any(x > y)),
    "norm": ("norm(x)", lambda x, y, p, i: np.sqrt(np.sum(x * x, axis=-1))),
    "norm_p1": ("norm(x, p=1, axis=0)", lambda x, y, p, i: np.sum(np.abs(x), axis=0)),
    "norm_p3": ("norm(x, p=3.0, axis=1, keepdims=True)",
                lambda x, y, p, i: np.sum(np.abs(x) ** 3, axis=1, keepdims=True) ** (1 / 3)),
    "cumsum": ("cumsum(x, axis=1)", lambda x, y, p, i: np.cumsum(x, axis=1)),
    "cumprod": ("cumprod(p, axis=0)", lambda x, y, p, i: np.cumprod(p, axis=0)),
    "sort": ("sort(x, axis=1)", lambda x, y, p, i: np.sort(x, axis=1)),
    "sort_descending": ("sort(x, axis=0, descending=True)", lambda x, y, p, i: np.sort(x, axis=0)[::-1]),
    "searchsorted": ("searchsorted(sort(y), x)",
                     lambda x, y, p, i: np.stack([np.searchsorted(np.sort(b), a) for a, b in zip(x, y)])),
    "searchsorted_right": ("searchsorted(sort(y), x, side='right')",
                           lambda x, y, p, i: np.stack([np.searchsorted(np.sort(b), a, side="right")
                                                        for a, b in zip(x, y)])),
    "searchsorted_broadcast": ("searchsorted(sort(idx), arange(3), side='right')",
                               lambda x, y, p, i: np.stack([np.searchsorted(np.sort(b), np.arange(3), side="right")
                                                            for b in i])),
    "take": ("take(ones(3) * 2 + arange(3), idx)", lambda x, y, p, i: (2.0 + np.arange(3))[i]),
    "take_along_axis": ("take_along_axis(x, idx * 0 + size(x, 1) - 1, axis=1)",
                        lambda x, y, p, i: np.repeat(x[:, -1:], x.shape[1], axis=1)),
    "expand_dims": ("expand_dims(x, axis=1)", lambda x, y, p, i: x[:, None, :]),
    "squeeze": ("squeeze(expand_dims(x, axis=0), axis=0)", lambda x, y, p, i: x),
    "moveaxis": ("moveaxis(x, 0, 1)", lambda x, y, p, i: x.T),
    "shift": ("shift(x, 1, axis=1)",
              lambda x, y, p, i: np.concatenate([np.zeros((x.shape[0], 1)), x[:, :-1]], axis=1)),
    "shift_fill": ("shift(x, 2, axis=0, fill=-1.5)",
                   lambda x, y, p, i: np.concatenate([np.full((min(2, x.shape[0]), x.shape[1]), -1.5),
                                                      x[:max(x.shape[0] - 2, 0)]], axis=0)),
    "stack": ("stack((x, y, 0.5), axis=1)", lambda x, y, p, i: np.stack([x, y, np.full_like(x, 0.5)], axis=1)),
    "stack_mixed": ("stack((idx, p))", lambda x, y, p, i: np.stack([i.astype(float), p])),
    "select": ("select(x, x > y)", lambda x, y, p, i: x[x > y]),
    "arange": ("arange(size(x, 1))", lambda x, y, p, i: np.arange(x.shape[1])),
    "one_hot": ("one_hot(idx, 3)", lambda x, y, p, i: (i[..., None] == np.arange(3)).astype(float)),
    "one_hot_axis": ("one_hot(idx, 3, axis=1)",
                     lambda x, y, p, i: (i[:, None, :] == np.arange(3)[None, :, None]).astype(float)),
    "ones": ("ones(size(x, 0))", lambda x, y, p, i: np.ones(x.shape[0])),
    "ones_like": ("ones_like(x)", lambda x, y, p, i: np.ones_like(x)),
    "numel": ("numel(x)", lambda x, y, p, i: x.size),
    "size": ("size(x, 1)", lambda x, y, p, i: x.shape[1]),
    "ndim": ("ndim(x)", lambda x, y, p, i: x.ndim),
    "absmax": ("absmax(x)", lambda x, y, p, i: np.max(np.abs(x))),
    "isnan": ("isnan(log(x))", lambda x, y, p, i: x < 0),
    "isinf": ("isinf(x / 0.0)", lambda x, y, p, i: x != 0),
    "isfinite": ("isfinite(log(x))", lambda x, y, p, i: x > 0),
    "float": ("float(idx)", lambda x, y, p, i: i.astype(float)),
    "close_self": ("close(x, x)", lambda x, y, p, i: True),
    "close_other": ("close(x, x + 1.0)", lambda x, y, p, i: False),
    "arithmetic": ("(x + y) * 2 - y / p + x ** 2", lambda x, y, p, i: (x + y) * 2 - y / p + x ** 2),
    "mod_floordiv": ("x % 0.75 + x // 0.75", lambda x, y, p, i: np.mod(x, 0.75) + np.floor_divide(x, 0.75)),
    "logic": ("(x > 0) & ~(y >= 0) | (x == y)", lambda x, y, p, i: ((x > 0) & ~(y >= 0)) | (x == y)),
    "compare": ("(x != y) & (x <= 1) & (y < 2)", lambda x, y, p, i: (x != y) & (x <= 1) & (y < 2)),
    "unary": ("-x + +y", lambda x, y, p, i: -x + y),
    "ifexp": ("1.0 if ndim(x) == 2 else 2.0", lambda x, y, p, i: 1.0),
    "constant": ("constant(x) * 2", lambda x, y, p, i: x * 2),
    "constants": ("where(x > 0, pi, -inf)", lambda x, y, p, i: np.where(x > 0, math.pi, -math.inf)),
}


def test_every_primitive_has_an_agreement_case():
    used = {name for text, _ in PRIMITIVE_CASES.values()
            for name in (n.func.id for n in ast.walk(ast.parse(text, mode="eval")) if isinstance(n, ast.Call))}
    assert set(PRIMITIVES) <= used, sorted(set(PRIMITIVES) - used)


@st.composite
def operands(draw):
    rows, cols = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    real = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5]), st.floats(-30, 30, allow_subnormal=False))
    x = draw(hnp.arrays(np.float64, (rows, cols), elements=real))
    y = draw(hnp.arrays(np.float64, (rows, cols), elements=real))
    p = draw(hnp.arrays(np.float64, (rows, cols), elements=st.floats(1e-3, 1.0)))
    idx = draw(hnp.arrays(np.int64, (rows, cols), elements=st.integers(0, 2)))
    return x, y, p, idx


def _assert_same(a, b, what):
    a, b = as_numpy(a), as_numpy(b)
    assert a.shape == b.shape, what
    if a.dtype == bool or b.dtype == bool:
        assert a.dtype == b.dtype == bool, what
        assert np.array_equal(a, b), what
        return
    a, b = a.astype(np.float64), b.astype(np.float64)
    assert np.array_equal(np.isnan(a), np.isnan(b)), what
    assert np.array_equal(np.isinf(a) & (a > 0), np.isinf(b) & (b > 0)), what
    assert np.array_equal(np.isinf(a) & (a < 0), np.isinf(b) & (b < 0)), what
    ok = np.isfinite(a) & np.isfinite(b)
    np.testing.assert_allclose(a[ok], b[ok], rtol=1e-11, atol=1e-12, err_msg=what)


@pytest.mark.parametrize("name", sorted(PRIMITIVE_CASES))
@settings(max_examples=12, deadline=None, database=None)
@given(data=operands())
def test_numpy_and_torch_agree(name, data):
    text, independent = PRIMITIVE_CASES[name]
    x, y, p, idx = data
    with np.errstate(all="ignore"):
        a = run(text, {"x": x, "y": y, "p": p, "idx": idx}, NP)
        b = run(text, {"x": torch.from_numpy(x), "y": torch.from_numpy(y), "p": torch.from_numpy(p),
                       "idx": torch.from_numpy(idx)}, TORCH)
        expected = independent(x, y, p, idx)
    if type(a) in (int, float):  # numel, size, ndim, a scalar if-else: plain Python numbers
        assert type(a) is type(b) and a == b == expected
        return
    assert isinstance(b, torch.Tensor) and b.device.type == "cpu"
    if b.is_floating_point():
        assert b.dtype == torch.float64 and as_numpy(a).dtype == np.float64
    _assert_same(a, b, f"{text}: numpy vs torch")
    _assert_same(a, np.asarray(expected), f"{text}: numpy vs independent")


def test_tuples_and_lists_evaluate_elementwise():
    f = compile_formula("sum(x, axis=[0, 1])", ["x"])
    assert float(f.evaluate({"x": np.arange(6.0).reshape(2, 3)}, NP)) == 15.0
    assert compile_formula("(1, 2.5)", []).evaluate({}, NP) == (1, 2.5)


@pytest.mark.parametrize("ctx", [NP, TORCH], ids=["numpy", "torch"])
def test_stable_primitives_at_huge_magnitudes(ctx):
    x = ctx.asarray([1e4, -1e4, 1e5, -1e5, 0.0])
    values = {name: as_numpy(run(f"{name}(x)", {"x": x}, ctx))
              for name in ("sigmoid", "softplus", "log_sigmoid")}
    assert np.all(np.isfinite(np.concatenate(list(values.values()))))
    np.testing.assert_array_equal(values["sigmoid"], [1.0, 0.0, 1.0, 0.0, 0.5])
    np.testing.assert_allclose(values["softplus"], [1e4, 0.0, 1e5, 0.0, math.log(2)], rtol=1e-15, atol=0)
    np.testing.assert_allclose(values["log_sigmoid"], [0.0, -1e4, 0.0, -1e5, -math.log(2)], rtol=1e-15, atol=0)
    big = ctx.asarray([1e5, 1e5, -1e5])
    assert float(run("logsumexp(x)", {"x": big}, ctx)) == pytest.approx(1e5 + math.log(2), rel=1e-15)
    ls = as_numpy(run("log_softmax(x)", {"x": ctx.asarray([1e4, 0.0])}, ctx))
    np.testing.assert_allclose(ls, [0.0, -1e4], rtol=1e-15, atol=1e-300)
    # Equal logits of 2**41: the shift comes off exactly, so each gets -log 2 to the last digit
    # (x - logsumexp(x) would keep an error of ulp(2**41) = 2**-11, 3e-4 relative).
    tied = as_numpy(run("log_softmax(x)", {"x": ctx.asarray([2.0 ** 41, 2.0 ** 41])}, ctx))
    np.testing.assert_allclose(tied, [-math.log(2)] * 2, rtol=1e-15, atol=0)


def test_logsumexp_of_all_minus_inf_is_minus_inf():
    for ctx in (NP, TORCH):
        x = ctx.asarray([[-math.inf, -math.inf], [0.0, -math.inf]])
        np.testing.assert_array_equal(as_numpy(run("logsumexp(x, axis=1)", {"x": x}, ctx)), [-math.inf, 0.0])


def test_variables_and_constants_in_scope():
    f = compile_formula("x * pi + y", ["x", "y", "z"])
    assert f.names == frozenset({"x", "y"})  # constants and unused names are not recorded
    assert set(CONSTANTS) == {"inf", "nan", "pi"}


# ---------------------------------------------------------------------------------------------
# Bugs and doubtful behaviour found while writing these tests
# ---------------------------------------------------------------------------------------------

def test_wrong_arity_is_refused_at_compile():
    with pytest.raises(FormulaError):
        compile_formula("where(x, y)", ["x", "y"])


def test_maximum_propagates_nan_like_numpy_and_torch():
    out = run("maximum(x, 0.0)", {"x": np.array([math.nan])}, NP)
    assert np.isnan(as_numpy(out)).all()


def test_logsumexp_over_an_empty_axis_is_minus_inf():
    out = run("logsumexp(x, axis=0)", {"x": np.zeros((0, 3))}, NP)
    np.testing.assert_array_equal(as_numpy(out), [-math.inf] * 3)


# ---------------------------------------------------------------------------------------------
# Constant folding: constants are computed once, at compile time (refusals: test_formula_security)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value", [
    ("2 ** 3", 8),
    ("-(2 ** 3)", -8),
    ("2 ** -1", 0.5),
    ("1.0e-3 * 2", 2.0e-3),
    ("10 ** 300", 10 ** 300),          # 997 bits: under the bound
    ("'mean' + 'x'", "meanx"),
    ("'ab' * 3", "ababab"),
    ("1 < 2", True),
    ("~True", False),
    ("(1, 2 ** 2)", (1, 4)),
    ("-inf", -math.inf),
    ("3 if 1 > 0 else 4", 3),
])
def test_constant_subexpressions_fold_to_their_value(text, value):
    f = compile_formula(text, NAMES)
    assert f.is_constant
    assert f.evaluate({}, NP) == value  # no names and no context needed: it is a value


def test_a_folded_constant_inside_a_formula_keeps_its_meaning():
    x = np.array([1.0, -2.0])
    f = compile_formula("x * 2 ** 3 + (1 - 0.5)", NAMES)
    assert not f.is_constant and f.names == {"x"}
    np.testing.assert_array_equal(f.evaluate({"x": x}, NP), x * 8 + 0.5)
    t = compile_formula("x * 2 ** 3", NAMES).evaluate({"x": torch.tensor([1.5])}, TORCH)
    assert float(t) == 12.0


def test_a_constant_condition_still_checks_names_in_both_branches():
    with pytest.raises(FormulaError, match="unknown name 'nope'"):
        compile_formula("x if 1 > 0 else nope", NAMES)
    f = compile_formula("x if 1 > 0 else y", NAMES)
    assert f.names == {"x", "y"} and not f.is_constant


def test_close_treats_values_past_the_dtypes_overflow_as_infinite():
    # A float16 sum of 70000 is inf: close(inf, 70000) holds where the dtype under test is float16,
    # and only there; a finite value beyond the overflow point is inf on either side.
    half = NP.with_tolerance(1e-3, 1e-3, overflow=65520.0)
    assert bool(run("close(x, y)", {"x": NP.asarray(float("inf")), "y": NP.asarray(7e4)}, half))
    assert bool(run("close(x, y)", {"x": NP.asarray(7e4), "y": NP.asarray(float("inf"))}, half))
    assert not bool(run("close(x, y)", {"x": NP.asarray(float("inf")), "y": NP.asarray(6e4)}, half))
    assert not bool(run("close(x, y)", {"x": NP.asarray(-float("inf")), "y": NP.asarray(7e4)}, half))
    assert not bool(run("close(x, y)", {"x": NP.asarray(float("inf")), "y": NP.asarray(7e4)},
                        NP.with_tolerance(1e-3, 1e-3)))


def test_sort_gradient_returns_to_each_elements_place():
    x = torch.tensor([[3.0, 1.0, 2.0]], dtype=torch.float64, requires_grad=True)
    out = run("sum(sort(x, descending=True) * arange(3))", {"x": x}, TORCH)  # weights 0, 1, 2 by rank
    (grad,) = torch.autograd.grad(out, x)
    assert grad.tolist() == [[0.0, 2.0, 1.0]]


def test_searchsorted_compares_in_the_narrower_dtype_like_every_comparison():
    # 1 + 2^-10 is 1 in bfloat16 (8 bits): a tie there, so 'left' no longer counts the 1.
    env = {"x": torch.tensor([[1.0]], dtype=torch.float64), "y": torch.tensor([[1.0 + 2**-10]], dtype=torch.float64)}
    assert run("searchsorted(x, y)", env, TORCH).tolist() == [[1]]
    assert run("searchsorted(x, y)", env, TORCH.comparing_in(torch.bfloat16)).tolist() == [[0]]


def test_searchsorted_refuses_an_unknown_side():
    with pytest.raises(ValueError, match="side"):
        run("searchsorted(x, y, side='middle')", {"x": np.zeros((1, 2)), "y": np.zeros((1, 1))}, NP)
