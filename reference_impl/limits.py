"""Bounds on what a spec or known-deviations file may ask for, in one place.

A spec from a stranger is data: loading it, validating it and running its formulas must end
quickly with a clean ``SpecError``, never a hang, a huge allocation or a traceback. Each bound is
far above what the shipped specs use (noted beside it) and is documented in docs/spec-format.md.
The JSON Schema repeats the ones it can express (tests check that the two agree).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from loss_conformance_reference.errors import SpecError

# Files
MAX_FILE_BYTES = 1 << 20          # 1 MiB per spec or deviations file (shipped: under 13 KiB)
MAX_YAML_DEPTH = 32               # nesting of mappings and sequences, aliases expanded (shipped: 8)
MAX_YAML_ALIASES = 256            # alias uses (*name) in one file (shipped: at most 9)
MAX_YAML_NODES = 100_000          # nodes after expanding aliases: stops "billion laughs" (shipped: < 1,000)
MAX_YAML_CHARS = 4 * MAX_FILE_BYTES  # characters of scalars after expanding aliases
MAX_INT_BITS = 64                 # bits of an integer literal's magnitude, in YAML or in a formula

# Formulas
MAX_FORMULA_CHARS = 8192          # shipped: at most 2,034
MAX_FORMULA_DEPTH = 64            # depth of the syntax tree (shipped: 17)
MAX_FORMULA_NODES = 4096          # nodes of the syntax tree (shipped: 630)
MAX_COMPUTED_INT_BITS = 1024      # an int that ** or * computes (constant folding and run time)
MAX_SEQUENCE_LENGTH = 1024        # a string or tuple that * repeats
MAX_ARRAY_ELEMENTS = 1 << 26      # an array a formula creates from a size: ones(n), arange(n), one_hot
#                                   (the large check's inputs hold 2^24 elements and more)

# Shapes, examples, tolerances
MAX_DIM = 4096                    # the max of a dim, a literal size in a shape, a length input's min
MAX_VARIADIC_RANK = 8             # the most dims a variadic group (*name) stands for
MAX_INPUT_ELEMENTS = 1 << 16      # elements of one input at its dims' maxima (shipped: 180)
MAX_EXAMPLES = 256                # worked examples per spec (shipped: 15)
MAX_EXAMPLE_ELEMENTS = 10_000     # numbers in one example input or expected value
MAX_RTOL = 0.1                    # beyond 10% a comparison no longer tests anything
MAX_ATOL = 0.1

Where = tuple[Any, ...]


def read_bounded(path: Path) -> str:
    """The UTF-8 text of ``path``, refused past ``MAX_FILE_BYTES`` without reading the rest."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(str(path), None, "(file)", f"cannot read: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        line = data.count(b"\n", 0, MAX_FILE_BYTES) + 1
        raise SpecError(str(path), line, "(file)", f"larger than {MAX_FILE_BYTES} bytes (the limit is reached "
                                                   f"on this line)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SpecError(str(path), line, "(file)", f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None


def spec_data_problem(data: dict[str, Any]) -> tuple[Where, str] | None:
    """The first bound that schema-valid spec data breaks, as (where, message); None if none.

    These are the bounds a JSON Schema cannot state: NaN tolerances, products of sizes, counts of
    nested numbers.
    """
    for where, message in _problems(data):
        return where, message
    return None


def _problems(d: dict[str, Any]) -> Iterator[tuple[Where, str]]:
    for dtype, tol in d.get("tolerance", {}).items():
        entries = tol.items() if dtype == "gradient" else [(None, tol)]
        for sub, t in entries:
            for key, bound in (("rtol", MAX_RTOL), ("atol", MAX_ATOL)):
                if not 0 <= t[key] <= bound:  # NaN passes the schema's minimum and maximum, not this
                    where = ("tolerance", dtype) + ((sub,) if sub else ()) + (key,)
                    yield where, f"must be a number from 0 to {bound}, not {t[key]}"
    dims = d.get("dims", {})
    for name, dim in dims.items():
        if "rank" in dim and dim["rank"][0] > dim["rank"][1]:
            yield ("dims", name, "rank"), f"low rank {dim['rank'][0]} is above high rank {dim['rank'][1]}"
    inputs = [(("inputs", n), v) for n, v in d.get("inputs", {}).items()]
    for i, variant in enumerate(d.get("variants", [])):
        inputs += [(("variants", i, "inputs", n), v) for n, v in variant.get("inputs", {}).items()]
        for j, layout in enumerate(variant.get("layouts", [])):
            for name, shape in layout.get("shapes", {}).items():
                yield from _shape(("variants", i, "layouts", j, "shapes", name), shape, dims)
    for where, v in inputs:
        if "shape" in v:
            yield from _shape(where + ("shape",), v["shape"], dims)
    for i, example in enumerate(d.get("examples", [])):
        values = [(("inputs", n), v) for n, v in example.get("inputs", {}).items()] + [(("expected",), example["expected"])]
        for key, value in values:
            count = _leaves(value)
            if count > MAX_EXAMPLE_ELEMENTS:
                yield ("examples", i) + key, f"{count} numbers; at most {MAX_EXAMPLE_ELEMENTS} in one value"


def _shape(where: Where, shape: list[Any], dims: dict[str, Any]) -> Iterator[tuple[Where, str]]:
    """Literal sizes at most MAX_DIM, and at most MAX_INPUT_ELEMENTS elements at the dims' maxima."""
    elements = 1
    for k, token in enumerate(map(str, shape)):
        name = token.lstrip("*")
        if token.isdigit():
            if int(token) > MAX_DIM:
                yield where + (k,), f"size {token} is above the limit of {MAX_DIM}"
                return
            elements *= int(token)
        elif name in dims:
            dim = dims[name]
            elements *= dim["max"] ** (dim["rank"][1] if token.startswith("*") and "rank" in dim else 1)
    if elements > MAX_INPUT_ELEMENTS:
        yield where, f"more than {MAX_INPUT_ELEMENTS} elements at the dims' maxima"


def _leaves(value: Any) -> int:
    """Numbers in a nested list, counted without recursion."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        else:
            count += 1
    return count


def check_array_size(elements: int, what: str) -> None:
    """Refuse, at run time, an array a formula asks for by size (``ones(n)`` and the like)."""
    if elements > MAX_ARRAY_ELEMENTS:
        raise ValueError(f"{what}: {elements} elements is above the limit of {MAX_ARRAY_ELEMENTS}")
