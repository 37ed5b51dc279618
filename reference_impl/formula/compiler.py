"""Parse a formula with ``ast`` into a whitelisted tree of closures over an ``ArrayContext``.

Nothing here calls ``eval``/``exec`` or resolves attributes: the only callables reachable are the
entries of ``PRIMITIVES``, and the only names are those the spec declares. Anything else is a
``FormulaError`` raised while the spec loads, before a single formula runs.

Size is bounded too (``loss_conformance_reference.limits``): the text's length and the tree's depth and node
count before compiling, and a sub-expression of constants is folded at compile time with its
arithmetic checked first (``bounds.refusal``), so ``10 ** 10 ** 10`` is refused while the spec
loads and ``2 ** 3`` costs nothing at run time.
"""
from __future__ import annotations

import ast
import inspect
import operator
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from loss_conformance_reference.errors import FormulaError
from loss_conformance_reference.formula.bounds import GUARDED, PLAIN, refusal
from loss_conformance_reference.formula.context import ArrayContext
from loss_conformance_reference.formula.primitives import CONSTANTS, PRIMITIVES
from loss_conformance_reference.limits import (MAX_COMPUTED_INT_BITS, MAX_FORMULA_CHARS, MAX_FORMULA_DEPTH, MAX_FORMULA_NODES,
                                   MAX_INT_BITS)

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

    @property
    def is_constant(self) -> bool:
        """Folded to one value at compile time (it reads no names and calls no function)."""
        return isinstance(self._run, _Const)


class _Const:
    """A node whose value is known at compile time (a literal, a constant, or folded from them)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self, env: Env, ctx: ArrayContext) -> Any:
        return self.value


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def compile_formula(text: str, known_names: Iterable[str]) -> Formula:
    """Compile ``text``; every free name must be in ``known_names`` or be a constant."""
    source = str(text).strip()
    if len(source) > MAX_FORMULA_CHARS:
        raise FormulaError(f"formula of {len(source)} characters; at most {MAX_FORMULA_CHARS}", _short(source))
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"not a valid expression: {exc.msg}", _short((exc.text or "").strip()),
                           (exc.offset or 1) - 1, exc.lineno or 1) from None
    except (RecursionError, MemoryError, ValueError):  # CPython's parser gives up on deep or long input
        raise FormulaError("too deeply nested or too long to parse", _short(source)) from None
    compiler = _Compiler(source, frozenset(known_names))
    compiler.check_size(tree.body)
    run = compiler.visit(tree.body)
    return Formula(source, frozenset(compiler.used), run)


class _Compiler:
    def __init__(self, source: str, known: frozenset[str]) -> None:
        self.source = source
        self.known = known
        self.used: set[str] = set()

    def fail(self, node: ast.AST, message: str) -> FormulaError:
        token = _short(ast.get_source_segment(self.source, node) or type(node).__name__)
        return FormulaError(message, token, getattr(node, "col_offset", 0), getattr(node, "lineno", 1))

    def check_size(self, root: ast.AST) -> None:
        """Depth and node count, walked without recursion; compiling and evaluating recurse per level."""
        nodes, stack = 0, [(root, 1)]
        while stack:
            node, depth = stack.pop()
            nodes += 1
            if depth > MAX_FORMULA_DEPTH:
                raise self.fail(node, f"nested more than {MAX_FORMULA_DEPTH} levels deep")
            if nodes > MAX_FORMULA_NODES:
                raise self.fail(root, f"more than {MAX_FORMULA_NODES} syntax nodes")
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))

    def fold(self, node: ast.AST, op: type | None, fn: Callable[..., Any], *args: Any) -> _Const:
        """The value of an operation on constants, computed now, after the bounds allow it."""
        why = refusal(op, *args) if op is not None and len(args) == 2 else None
        if why:
            raise self.fail(node, why)
        try:
            value = fn(*args)
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise self.fail(node, f"cannot be computed: {exc}") from None
        if isinstance(value, complex):
            raise self.fail(node, "the value is not a real number")
        if isinstance(value, int) and value.bit_length() > MAX_COMPUTED_INT_BITS:
            raise self.fail(node, f"the value has more than {MAX_COMPUTED_INT_BITS} bits")
        return _Const(value)

    def visit(self, node: ast.AST) -> Node:
        method = getattr(self, f"_{type(node).__name__}", None)
        if method is None:
            hint = _HINTS.get(type(node), f"'{type(node).__name__}' expressions are not allowed")
            raise self.fail(node, hint)
        return method(node)

    def _Constant(self, node: ast.Constant) -> Node:
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
            raise self.fail(node, f"integer literal of {value.bit_length()} bits; at most {MAX_INT_BITS}")
        if isinstance(value, (int, float, str)):
            return _Const(value)
        raise self.fail(node, f"constant of type {type(value).__name__} is not allowed")

    def _Name(self, node: ast.Name) -> Node:
        name = node.id
        if name in CONSTANTS:
            return _Const(CONSTANTS[name])
        if name.startswith("_") or name not in self.known:
            raise self.fail(node, f"unknown name '{name}'")
        self.used.add(name)
        return lambda env, ctx: env[name]

    def _BinOp(self, node: ast.BinOp) -> Node:
        op = _BINOPS.get(type(node.op))
        if op is None:
            raise self.fail(node, f"operator {type(node.op).__name__} is not allowed")
        left, right = self.visit(node.left), self.visit(node.right)
        kind = type(node.op)
        if isinstance(left, _Const) and isinstance(right, _Const):
            return self.fold(node, kind, op, left.value, right.value)
        if kind not in GUARDED:
            return lambda env, ctx: op(left(env, ctx), right(env, ctx))
        source = self.source

        def guarded(env: Env, ctx: ArrayContext) -> Any:
            # a plain Python operand (a parameter's value) can grow without bound; arrays cannot
            a, b = left(env, ctx), right(env, ctx)
            if type(a) in PLAIN or type(b) in PLAIN:
                why = refusal(kind, a, b)
                if why:  # the source text is cut out only here: it costs more than compiling the node
                    raise FormulaError(why, _short(ast.get_source_segment(source, node) or ""), node.col_offset,
                                       node.lineno)
            return op(a, b)

        return guarded

    def _UnaryOp(self, node: ast.UnaryOp) -> Node:
        op = _UNARY.get(type(node.op))
        if op is None:
            raise self.fail(node, "use ~ for logical not")
        operand = self.visit(node.operand)
        if isinstance(operand, _Const):
            return self.fold(node, None, op, operand.value)
        return lambda env, ctx: op(operand(env, ctx))

    def _Compare(self, node: ast.Compare) -> Node:
        if len(node.ops) != 1:
            raise self.fail(node, "chained comparisons are not allowed; combine with &")
        op = _COMPARE.get(type(node.ops[0]))
        if op is None:
            raise self.fail(node, f"comparison {type(node.ops[0]).__name__} is not allowed")
        left, right = self.visit(node.left), self.visit(node.comparators[0])
        if isinstance(left, _Const) and isinstance(right, _Const):
            return self.fold(node, None, op, left.value, right.value)
        return lambda env, ctx: ctx.compare(op, left(env, ctx), right(env, ctx))

    def _IfExp(self, node: ast.IfExp) -> Node:
        # Scalar choice on parameters (e.g. an option that switches a term on); arrays use where.
        test, body, orelse = self.visit(node.test), self.visit(node.body), self.visit(node.orelse)
        if isinstance(test, _Const):
            return body if bool(test.value) else orelse
        return lambda env, ctx: body(env, ctx) if bool(test(env, ctx)) else orelse(env, ctx)

    def _Tuple(self, node: ast.Tuple) -> Node:
        items = [self.visit(e) for e in node.elts]
        if all(isinstance(item, _Const) for item in items):
            return _Const(tuple(item.value for item in items))
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

        # The formulas' hottest path: one closure per arity without keywords spares a generator.
        if kwargs:
            def call(env: Env, ctx: ArrayContext) -> Any:
                return fn(ctx, *[a(env, ctx) for a in args], **{k: v(env, ctx) for k, v in kwargs.items()})
        elif len(args) == 1:
            (a0,) = args

            def call(env: Env, ctx: ArrayContext) -> Any:
                return fn(ctx, a0(env, ctx))
        elif len(args) == 2:
            a0, a1 = args

            def call(env: Env, ctx: ArrayContext) -> Any:
                return fn(ctx, a0(env, ctx), a1(env, ctx))
        else:
            def call(env: Env, ctx: ArrayContext) -> Any:
                return fn(ctx, *[a(env, ctx) for a in args])

        return call
