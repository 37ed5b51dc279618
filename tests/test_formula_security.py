"""The formula language is closed: anything outside the whitelist is refused when the formula is
compiled, with the offending token and its column, and never run; and bounded: nothing a formula
computes can hang or exhaust memory (reference_impl/limits.py)."""
from __future__ import annotations

import ast
import builtins
import os

import numpy as np
import pytest

from loss_conformance_reference.errors import FormulaError
from loss_conformance_reference.formula import compile_formula
from loss_conformance_reference.limits import (MAX_COMPUTED_INT_BITS, MAX_FORMULA_CHARS, MAX_FORMULA_DEPTH, MAX_FORMULA_NODES,
                                   MAX_INT_BITS, MAX_SEQUENCE_LENGTH)
from tests.test_formula import NAMES, NP, PRIMITIVE_CASES

# ---------------------------------------------------------------------------------------------
# Injection: refused when compiled, never executed
# ---------------------------------------------------------------------------------------------

REFUSED = [
    '__import__("os")',
    "x.__class__",
    "x.__class__.__mro__",
    "(lambda: 1)()",
    "[a for a in x]",
    "{a for a in x}",
    "{a: a for a in x}",
    "(a for a in x)",
    'eval("1")',
    'exec("1")',
    'open("f")',
    'getattr(x, "y")',
    "globals()",
    "print(1)",
    "x(1)",          # a known input is not callable
    "sum(1)(x)",     # nor is a call's result
    "x[0]",
    "x[0:1]",
    "sum(*x)",
    "sum(x, **y)",
    "clamp(x, **{'min': 0})",
    "(z := x)",
    'f"{x}"',
    'f"{x.__class__}"',
    "unknown",
    "_private",      # underscored names are refused even when declared
    "__builtins__",
    "x and y",
    "x or y",
    "not x",
    'b"bytes"',
    "None",
    "...",
    "1j",
    "x in y",
    "x is y",
    "0 < x < 1",
    "x @ y",
    "x << 1",
    "x ^ y",
    "{1, 2}",
    "{1: 2}",
    "sum(x, foo=1)",
    "abs(x, axis=0)",
    "where",         # a function name is not a value
    "x +",
    "x = 1",
    "import os",
    "lambda: 1",
    "await x",
    "yield x",
]


@pytest.mark.parametrize("text", REFUSED)
def test_refused_at_compile(text):
    with pytest.raises(FormulaError) as info:
        compile_formula(text, ["x", "y", "_private"])
    err = info.value
    assert err.message and err.token
    assert isinstance(err.col, int) and err.col >= 0


@pytest.mark.parametrize("text, token, message", [
    ("x + y.z", "y.z", "attribute"),
    ("1 + unknown * 2", "unknown", "unknown name 'unknown'"),
    ("log(x) + os(x)", "os", "unknown function 'os'"),
    ("sum(x, foo=1)", "foo=1", "no keyword 'foo'"),
    ("exp(x) + x[0]", "x[0]", "subscript"),
    ("abs(x) + sum(*x)", "*x", "unpacking"),
    ("x + (x and y)", "x and y", "'and'"),
    ("where(x > 0, x, b'1')", "b'1'", "bytes"),
    ("x + (lambda: 1)", "lambda: 1", "lambda"),
])
def test_error_carries_the_offending_token_and_column(text, token, message):
    with pytest.raises(FormulaError) as info:
        compile_formula(text, ["x", "y"])
    err = info.value
    assert err.token == token
    assert err.col == text.index(token)
    assert err.lineno == 1
    assert message in err.message


def test_syntax_error_carries_its_column_and_line():
    with pytest.raises(FormulaError) as info:
        compile_formula("(x +\n y +)", ["x", "y"])
    assert info.value.lineno == 2
    assert "valid expression" in info.value.message


def test_error_line_of_a_multiline_formula():
    with pytest.raises(FormulaError) as info:
        compile_formula("(x +\n   y.real)", ["x", "y"])
    assert (info.value.lineno, info.value.col, info.value.token) == (2, 3, "y.real")


@pytest.fixture
def sentinel(tmp_path, monkeypatch):
    """Paths and names a malicious formula would touch, and guards that fail on any execution."""
    var = "LOSS_CONFORMANCE_TEST_SENTINEL"
    monkeypatch.delenv(var, raising=False)
    target = tmp_path / "pwned"
    calls = []

    def forbidden(name):
        def fn(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called while compiling a formula")
        return fn

    real_compile = builtins.compile

    def ast_only_compile(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:  # ast.parse is allowed; producing bytecode is not
            calls.append("compile")
            raise AssertionError("compile() to bytecode was called while compiling a formula")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", forbidden("eval"))
    monkeypatch.setattr(builtins, "exec", forbidden("exec"))
    monkeypatch.setattr(builtins, "compile", ast_only_compile)
    monkeypatch.setattr(os, "system", forbidden("os.system"))
    yield target, var, calls
    assert not target.exists(), "a refused formula created the sentinel file"
    assert var not in os.environ, "a refused formula set the sentinel variable"
    assert calls == [], calls


def _malicious(target, var):
    t = str(target)
    env = f'__import__("os").environ.__setitem__("{var}", "1")'
    return [
        f'__import__("os").system("touch {t}")',
        env,
        f'open("{t}", "w").write("x")',
        f'eval("open(\'{t}\', \'w\')")',
        f'exec("import os; os.system(\'touch {t}\')")',
        f'getattr(__import__("os"), "system")("touch {t}")',
        f'(lambda: open("{t}", "w"))()',
        f'[open("{t}", "w") for a in x]',
        f'{{open("{t}", "w") for a in x}}',
        f'x(open("{t}", "w"))',
        f'sum(open("{t}", "w"))',
        'x.__class__.__mro__[1].__subclasses__()',
        f'x[open("{t}", "w")]',
        f'sum(*[open("{t}", "w")])',
        f'sum(x, **{{"axis": open("{t}", "w")}})',
        f'(y := open("{t}", "w"))',
        f'f"{{open(\'{t}\', \'w\')}}"',
        f'x and {env}',
        f'x + 1 if x else open("{t}", "w")',
        f'where(x > 0, x, __import__("pathlib").Path("{t}").touch())',
        f'exp(x) + {env}',
    ]


def test_malicious_formulas_are_refused_and_never_run(sentinel):
    target, var, _ = sentinel
    texts = _malicious(target, var)
    assert len(texts) > 15
    for text in texts:
        with pytest.raises(FormulaError):
            compile_formula(text, ["x", "y"])


def test_refusal_happens_before_anything_runs_even_with_a_valid_prefix(sentinel):
    # the left operand is fine; the whole formula is still refused at compile time, not halfway
    # through an evaluation
    target, var, _ = sentinel
    with pytest.raises(FormulaError):
        compile_formula(f'sum(x) + open("{target}", "w").write("1")', ["x"])


def test_compiling_and_evaluating_valid_formulas_never_uses_eval(sentinel):
    for text, _ in PRIMITIVE_CASES.values():
        f = compile_formula(text, list(NAMES))
        x = np.array([[0.5, -1.0], [2.0, 0.0]])
        with np.errstate(all="ignore"):
            f.evaluate({"x": x, "y": x + 1, "p": np.abs(x) + 0.5, "idx": np.array([[0, 1], [2, 0]])}, NP)


def test_the_payloads_are_live(tmp_path, monkeypatch):
    # The sentinel checks are not vacuous: run by Python itself, the payloads do have their
    # side effects (the file appears, the variable is set).
    target, var = tmp_path / "pwned", "LOSS_CONFORMANCE_TEST_SENTINEL"
    monkeypatch.setenv(var, "0")
    monkeypatch.delenv(var)  # absent now, and removed again when the test ends
    texts = _malicious(target, var)
    eval(texts[2], {})  # noqa: S307 - open(target, "w").write("x")
    assert target.exists()
    eval(texts[1], {})  # noqa: S307 - os.environ[var] = "1"
    assert os.environ.get(var) == "1"


# ---------------------------------------------------------------------------------------------
# Size: bounded before anything is computed (reference_impl/limits.py)
# ---------------------------------------------------------------------------------------------

TOO_BIG = [
    ("10 ** 10 ** 10", "10 ** 10 ** 10", f"more than {MAX_COMPUTED_INT_BITS} bits"),
    ("x * 10 ** 10 ** 10", "10 ** 10 ** 10", "bits"),
    ("2 ** 2000", "2 ** 2000", "bits"),
    ("(-3) ** 10 ** 6", "(-3) ** 10 ** 6", "bits"),
    ("2 ** 600 * 2 ** 600", "2 ** 600 * 2 ** 600", "bits"),
    ("'a' * 10 ** 10", "'a' * 10 ** 10", f"longer than {MAX_SEQUENCE_LENGTH}"),
    ("10 ** 10 * 'a'", "10 ** 10 * 'a'", "longer than"),
    ("(1, 2) * 10 ** 6", "(1, 2) * 10 ** 6", "longer than"),
    ("'%999999999d' % 1", "'%999999999d' % 1", "string formatting"),
    ("10.0 ** 400", "10.0 ** 400", "cannot be computed"),
    ("1 / 0", "1 / 0", "cannot be computed"),
    ("(-8) ** 0.5", "(-8) ** 0.5", "not a real number"),
    (str(2 ** MAX_INT_BITS), str(2 ** MAX_INT_BITS), "integer literal"),
    ("1" * 5000, "", "4300 digits"),
]


@pytest.mark.parametrize("text, token, message", TOO_BIG)
def test_constants_too_big_to_compute_are_refused_at_compile(text, token, message):
    with pytest.raises(FormulaError) as info:
        compile_formula(text, NAMES)
    assert message in info.value.message
    assert info.value.token.startswith(token[:50])


def test_the_largest_allowed_literal_compiles():
    assert compile_formula(str(2 ** MAX_INT_BITS - 1), NAMES).evaluate({}, NP) == 2 ** MAX_INT_BITS - 1


@pytest.mark.parametrize("text, env", [
    ("s * n", {"s": "a", "n": 10 ** 10}),
    ("n * s", {"s": "a", "n": 10 ** 10}),
    ("s * n", {"s": "a", "n": np.int64(10 ** 10)}),
    ("n ** n", {"n": 10 ** 10}),
    ("(n ** 100) * (n ** 100) * (n ** 100) * (n ** 100)", {"n": 2 ** 60}),
    ("s + s", {"s": "a" * 1000}),
    ("s % n", {"s": "%999999999d", "n": 1}),
])
def test_plain_python_operands_are_bounded_at_run_time(text, env):
    # a parameter's value is a plain Python int or str: the operator must not build a giant one
    f = compile_formula(text, ["s", "n"])
    with pytest.raises(FormulaError) as info:
        f.evaluate(env, NP)
    assert info.value.token and info.value.token in text  # the operation refused, as written


def test_run_time_bounds_leave_ordinary_values_alone():
    f = compile_formula("s * n + s", ["s", "n"])
    assert f.evaluate({"s": "ab", "n": 3}, NP) == "abababab"
    assert compile_formula("n ** 2 * n", ["n"]).evaluate({"n": 7}, NP) == 343
    x = np.array([0.0, 1.0, 2.0])  # an array's elements have a fixed size: no bound, inf as NumPy gives it
    with np.errstate(over="ignore"):
        out = compile_formula("x ** n * 2", ["x", "n"]).evaluate({"x": x, "n": 10 ** 10}, NP)
    np.testing.assert_array_equal(out, [0.0, 2.0, np.inf])


@pytest.mark.parametrize("text", ["ones(n)", "arange(n)", "one_hot(x, n)"])
def test_arrays_sized_by_a_value_are_bounded_at_run_time(text):
    f = compile_formula(text, ["n", "x"])
    with pytest.raises(ValueError, match="above the limit"):
        f.evaluate({"n": 10 ** 12, "x": np.zeros(3, dtype=np.int64)}, NP)


@pytest.mark.parametrize("text, message", [
    ("x + " * (MAX_FORMULA_CHARS // 4) + "x", "characters"),
    ("-" * (MAX_FORMULA_DEPTH + 1) + "x", "levels deep"),
    ("(" * 300 + "x" + ")" * 300, "too many nested parentheses"),
    ("sum((" + "x, " * (MAX_FORMULA_NODES // 2) + "))", "syntax nodes"),
    ("+".join(["x"] * 1900), "levels deep"),
    ("-" * 5000 + "x", "too deeply nested or too long to parse"),     # RecursionError in ast.parse
    ("+".join(["x"] * 4000), "too deeply nested or too long to parse"),  # RecursionError too
    ("~" * 8000 + "x", "too deeply nested or too long to parse"),     # MemoryError in ast.parse
])
def test_long_or_deep_formulas_are_refused_before_compiling(text, message):
    with pytest.raises(FormulaError) as info:
        compile_formula(text, NAMES)
    assert message in info.value.message
    assert len(info.value.token) <= 60  # the token shown is shortened


def test_the_deepest_allowed_formula_compiles_and_runs():
    f = compile_formula("-" * (MAX_FORMULA_DEPTH - 2) + "x", NAMES)
    assert float(f.evaluate({"x": np.float64(2.0)}, NP)) == 2.0
