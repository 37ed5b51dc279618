"""Python-level arithmetic in formulas, bounded before it is computed.

NumPy and torch arrays have fixed-size elements, but plain Python values do not: ``10 ** 10 ** 10``
is an int of 33 billion bits and ``'a' * 10 ** 10`` a 10 GB string, either of which hangs or
exhausts memory. The same check serves constant folding at compile time and the operators at run
time (where an operand may be a parameter's value or an earlier binding).
"""
from __future__ import annotations

import ast
import math
from numbers import Integral
from typing import Any

from loss_conformance_reference.limits import MAX_COMPUTED_INT_BITS, MAX_SEQUENCE_LENGTH

_SEQUENCES = (str, bytes, tuple, list)
# Operand types that can grow without bound; anything else (arrays, floats) is left alone.
PLAIN = frozenset({int, bool, str, bytes, tuple, list})
GUARDED = frozenset({ast.Add, ast.Mult, ast.Pow, ast.Mod})


def refusal(op: type, a: Any, b: Any) -> str | None:
    """Why ``a <op> b`` must not be computed, or None when it is safe."""
    if op is ast.Pow and _int(a) and _int(b) and b > 0 and abs(a) > 1:
        # the result has about b * log2|a| bits; b's own size is checked first so the product is cheap
        if b.bit_length() > 32 or b * math.log2(abs(a)) > MAX_COMPUTED_INT_BITS:
            return f"the power would have more than {MAX_COMPUTED_INT_BITS} bits"
    elif op is ast.Mult:
        if _int(a) and _int(b) and a.bit_length() + b.bit_length() > MAX_COMPUTED_INT_BITS + 1:
            return f"the product would have more than {MAX_COMPUTED_INT_BITS} bits"
        for seq, n in ((a, b), (b, a)):
            if isinstance(seq, _SEQUENCES) and isinstance(n, Integral) and len(seq) * int(n) > MAX_SEQUENCE_LENGTH:
                return f"repeating a {type(seq).__name__} would make it longer than {MAX_SEQUENCE_LENGTH}"
    elif op is ast.Add:
        if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES) and len(a) + len(b) > MAX_SEQUENCE_LENGTH:
            return f"joining would make a {type(a).__name__} longer than {MAX_SEQUENCE_LENGTH}"
    elif op is ast.Mod and isinstance(a, (str, bytes)):
        return "string formatting with % is not part of the formula language"
    return None


def _int(x: Any) -> bool:
    return isinstance(x, int)  # Python ints (bool included); NumPy integers wrap around instead of growing
