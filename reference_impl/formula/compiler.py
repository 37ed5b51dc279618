"""Parse a formula with ``ast`` into a whitelisted tree of closures over an ``ArrayContext``.

Nothing here calls ``eval``/``exec`` or resolves attributes: the only callables reachable are the
entries of ``PRIMITIVES``, and the only names are those the spec declares. Anything else is a
``FormulaError`` raised while the spec loads, before a single formula runs.
"""
from __future__ import annotations

import ast
import inspect
import operator
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from reference_impl.errors import FormulaError
from reference_impl.formula.context import ArrayContext
from reference_impl.formula.primitives import CONSTANTS, PRIMITIVES

Env = Mapping[str, Any]
Node = Callable[[Env, ArrayContext], Any]

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
    ast.FloorDiv: operator.floordiv,
    ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_,
}
def _invert(value: Any) -> Any:
    return not value if isinstance(value, bool) else ~value  # ~True is -2 in Python, truthy


_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: _invert}
_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_HINTS: dict[type, str] = {
    ast.Attribute: "attribute access is not part of the formula language",
    ast.Lambda: "lambdas are not part of the formula language",
    ast.BoolOp: "use & and | on arrays instead of 'and'/'or'",
    ast.Subscript: "use take or take_along_axis instead of subscripts",
    ast.ListComp: "comprehensions are not part of the formula language",
    ast.GeneratorExp: "comprehensions are not part of the formula language",
    ast.NamedExpr: "bind names in the spec, not inside a formula",
}


@dataclass(frozen=True)
class Formula:
    """A compiled formula: its text, the names it reads, and the closure that evaluates it."""

    text: str
    names: frozenset[str]
    _run: Node

    def evaluate(self, env: Env, ctx: ArrayContext) -> Any:
        return self._run(env, ctx)


def compile_formula(text: str, known_names: Iterable[str]) -> Formula:
    """Compile ``text``; every free name must be in ``known_names`` or be a constant."""
    source = str(text).strip()
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"not a valid expression: {exc.msg}", (exc.text or "").strip(), (exc.offset or 1) - 1,
                           exc.lineno or 1) from None
    compiler = _Compiler(source, frozenset(known_names))
    run = compiler.visit(tree.body)
    return Formula(source, frozenset(compiler.used), run)


class _Compiler:
    def __init__(self, source: str, known: frozenset[str]) -> None:
        self.source = source
        self.known = known
        self.used: set[str] = set()

    def fail(self, node: ast.AST, message: str) -> FormulaError:
        token = ast.get_source_segment(self.source, node) or type(node).__name__
        return FormulaError(message, token, getattr(node, "col_offset", 0), getattr(node, "lineno", 1))

    def visit(self, node: ast.AST) -> Node:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            hint = _HINTS.get(type(node), f"'{type(node).__name__}' expressions are not allowed")
            raise self.fail(node, hint)
        return method(node)

    def _Constant(self, node: ast.Constant) -> Node:
        value = node.value
        if isinstance(value, bool) or isinstance(value, (int, float, str)):
            return lambda env, ctx: value
        raise self.fail(node, f"constant of type {type(value).__name__} is not allowed")

    def _Name(self, node: ast.Name) -> Node:
        name = node.id
        if name in CONSTANTS:
            value = CONSTANTS[name]
            return lambda env, ctx: value
        if name.startswith("_") or name not in self.known:
            raise self.fail(node, f"unknown name '{name}'")
        self.used.add(name)
        return lambda env, ctx: env[name]

    def _BinOp(self, node: ast.BinOp) -> Node:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.fail(node, f"operator {type(node.op).__name__} is not allowed")
        left, right = self.visit(node.left), self.visit(node.right)
        return lambda env, ctx: op(left(env, ctx), right(env, ctx))

    def _UnaryOp(self, node: ast.UnaryOp) -> Node:
        op = _UNARY.get(type(node.op))
        if op is None:
            raise self.fail(node, "use ~ for logical not")
        operand = self.visit(node.operand)
        return lambda env, ctx: op(operand(env, ctx))

    def _Compare(self, node: ast.Compare) -> Node:
        if len(node.ops) != 1:
            raise self.fail(node, "chained comparisons are not allowed; combine with &")
        op = _COMPARE.get(type(node.ops[0]))
        if op is None:
            raise self.fail(node, f"comparison {type(node.ops[0]).__name__} is not allowed")
        left, right = self.visit(node.left), self.visit(node.comparators[0])
        return lambda env, ctx: op(left(env, ctx), right(env, ctx))

    def _IfExp(self, node: ast.IfExp) -> Node:
        # Scalar choice on parameters (e.g. an option that switches a term on); arrays use where.
        test, body, orelse = self.visit(node.test), self.visit(node.body), self.visit(node.orelse)
        return lambda env, ctx: body(env, ctx) if bool(test(env, ctx)) else orelse(env, ctx)

    def _Tuple(self, node: ast.Tuple) -> Node:
        items = [self.visit(e) for e in node.elts]
        return lambda env, ctx: tuple(item(env, ctx) for item in items)

    _List = _Tuple

    def _Call(self, node: ast.Call) -> Node:
        if not isinstance(node.func, ast.Name):
            raise self.fail(node.func, "only the language's functions can be called")
        name = node.func.id
        primitive = PRIMITIVES.get(name)
        if primitive is None:
            raise self.fail(node.func, f"unknown function '{name}'")
        args = []
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                raise self.fail(arg, "argument unpacking is not allowed")
            args.append(self.visit(arg))
        kwargs = {}
        for kw in node.keywords:
            if kw.arg is None or kw.arg not in primitive.keywords:
                raise self.fail(kw.value if kw.arg is None else kw, f"'{name}' takes no keyword '{kw.arg}'")
            kwargs[kw.arg] = self.visit(kw.value)
        fn = primitive.fn
        try:
            inspect.signature(fn).bind(None, *args, **kwargs)
        except TypeError as exc:
            raise self.fail(node, f"'{name}': {exc}") from None

        def call(env: Env, ctx: ArrayContext) -> Any:
            return fn(ctx, *(a(env, ctx) for a in args), **{k: v(env, ctx) for k, v in kwargs.items()})

        return call
