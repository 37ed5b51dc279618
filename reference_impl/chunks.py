"""Evaluate a spec in chunks of rows, so that the float64 oracle of an input of 2^24 elements and
more holds one chunk's intermediates at a time instead of every intermediate at full size.

The rows are the leading axis of the largest input; the inputs whose pattern starts with the same
dim are cut along it, the others (a class weight) are shared by every chunk. The bindings that the
``none`` output needs are evaluated chunk by chunk; of them, only those that the rest of the
formula reads (the per-sample ``loss``, a per-sample weight) are kept, concatenated, and the
rest (the reductions, a normaliser summed over the batch, an error magnitude over the whole
input) is evaluated once on the full inputs and those. No spec says that its rows are
independent, so a split is used only where the formula shows it:

- every chunked binding keeps the chunk's rows on its leading axis (a value reduced over the
  rows, or one of another shape, is not a row's);
- on a probe of the first rows, the kept bindings evaluated one row at a time equal those of the
  rows evaluated together (a row that reads another row, through a scalar taken over the batch in
  the middle of an expression, differs there).

Otherwise the formula is evaluated in one piece, as before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np

from reference_impl.evaluate import Evaluation, build_env, evaluate
from reference_impl.formula import ArrayContext
from reference_impl.model import Layout, LossSpec, Variant

# A chunk holds the rows of about this many elements of the largest input (8 MiB of float64):
# the oracle's intermediates beyond its inputs and the kept bindings are a few times that.
CHUNK_ELEMENTS = 2**20
# Rows evaluated together and one by one to see that the rows are independent.
PROBE_ROWS = 3


@dataclass(frozen=True)
class RowSplit:
    """How one evaluation is cut into chunks of rows."""

    rows: int                         # the size of the leading axis of the inputs cut
    chunk_rows: int                   # rows per chunk
    cut: frozenset[str]               # inputs cut along their leading axis
    chunked: tuple[str, ...]          # bindings evaluated chunk by chunk, in order
    kept: tuple[str, ...]             # of those, the ones the rest of the formula reads

    def chunks(self) -> Iterator[tuple[int, int]]:
        for start in range(0, self.rows, self.chunk_rows):
            yield start, min(start + self.chunk_rows, self.rows)


def plan_split(variant: Variant, layout: Layout, env: Mapping[str, Any],
               chunk_elements: int = CHUNK_ELEMENTS) -> RowSplit | None:
    """The split of an evaluation whose names in scope are ``env`` (``build_env``'s), or None
    where the inputs fit one chunk or no input has rows to cut."""
    if layout.unbatched:  # one sample
        return None
    arrays = {name: env[name] for name in variant.inputs if name in env and hasattr(env[name], "shape")}
    axes = {name: _axes(layout.shapes[name], len(a.shape)) for name, a in arrays.items() if name in layout.shapes}
    laid = {name: a for name, a in arrays.items() if name in axes and len(a.shape) > 0 and len(axes[name]) == len(a.shape)}
    if not laid:
        return None
    largest = max(laid, key=lambda name: _numel(laid[name]))
    rows, lead, ndim = int(laid[largest].shape[0]), axes[largest][0], len(laid[largest].shape)
    per_row = max(1, _numel(laid[largest]) // max(rows, 1))
    chunk_rows = max(1, chunk_elements // per_row)
    if rows <= chunk_rows:
        return None
    cut = {name for name, a in laid.items() if axes[name][0] == lead and int(a.shape[0]) == rows}
    # An input shaped after another (``broadcast_to: input``) lines up with it from the right: with
    # as many axes and the rows, it is cut; with fewer axes, or one row, it is broadcast to each chunk.
    for name, a in arrays.items():
        if name in axes:
            continue
        if len(a.shape) == ndim and int(a.shape[0]) == rows:
            cut.add(name)
        elif len(a.shape) > ndim or (len(a.shape) == ndim and int(a.shape[0]) != 1):
            return None
    chunked = _needed(variant, variant.reductions["none"].names) if "none" in variant.reductions else set()
    rest = [f.names for name, f in variant.bindings if name not in chunked]
    rest += [f.names for table in (variant.reductions, variant.magnitude, variant.gradient_magnitude)
             for f in table.values()]
    read_later = set().union(*rest)
    order = tuple(name for name, _ in variant.bindings if name in chunked)
    return RowSplit(rows, chunk_rows, frozenset(cut), order, tuple(name for name in order if name in read_later))


def evaluate_in_chunks(spec: LossSpec, variant: Variant, inputs: Mapping[str, Any], params: Mapping[str, Any],
                       ctx: ArrayContext, reductions: tuple[str, ...] | None = None, with_magnitude: bool = False,
                       gradient: bool = False, chunk_elements: int = CHUNK_ELEMENTS) -> Evaluation:
    """``evaluate``'s result, computed chunk by chunk where the formula's rows are independent."""
    env, layout = build_env(spec, variant, inputs, params, ctx)
    split = plan_split(variant, layout, env, chunk_elements)
    kept = row_bindings(variant, env, split, ctx) if split is not None else None
    if kept is None:
        return evaluate(spec, variant, inputs, params, ctx, reductions, with_magnitude, gradient=gradient)
    return evaluate(spec, variant, inputs, params, ctx, reductions, with_magnitude, gradient=gradient,
                    precomputed=kept, skip=frozenset(split.chunked))  # type: ignore[union-attr]


def row_bindings(variant: Variant, env: Mapping[str, Any], split: RowSplit, ctx: ArrayContext) -> dict[str, Any] | None:
    """The kept bindings at full size, evaluated chunk by chunk (no gradient graph is kept); None
    where the rows turn out not to be independent."""
    if not rows_are_independent(variant, env, split, ctx):
        return None
    pieces: dict[str, list[Any]] = {name: [] for name in split.kept}
    for start, stop in split.chunks():
        values = evaluate_chunk(variant, env, split, start, stop, ctx, detach=True)
        if values is None:
            return None
        for name in split.kept:
            pieces[name].append(values[name])
    return {name: ctx.xp.concat(parts, axis=0) for name, parts in pieces.items()}


def evaluate_chunk(variant: Variant, env: Mapping[str, Any], split: RowSplit, start: int, stop: int,
                   ctx: ArrayContext, detach: bool = False) -> dict[str, Any] | None:
    """The chunked bindings on rows ``start:stop`` of ``env`` (already sliced inputs may be given
    in ``env`` at those rows); None where one of them does not keep the rows on its leading axis."""
    scope = dict(env)
    for name in split.cut:
        if int(scope[name].shape[0]) == split.rows:
            scope[name] = scope[name][start:stop]
    return _run(variant, scope, split, stop - start, ctx, detach)


def rows_are_independent(variant: Variant, env: Mapping[str, Any], split: RowSplit, ctx: ArrayContext) -> bool:
    """The kept bindings of the first rows, evaluated together and one row at a time, agree."""
    probe = min(PROBE_ROWS, split.rows)
    together = evaluate_chunk(variant, env, split, 0, probe, ctx, detach=True)
    if together is None:
        return False
    for row in range(probe):
        alone = evaluate_chunk(variant, env, split, row, row + 1, ctx, detach=True)
        if alone is None or not all(_same(alone[name], together[name][row:row + 1]) for name in split.kept):
            return False
    return True


def _run(variant: Variant, scope: dict[str, Any], split: RowSplit, rows: int, ctx: ArrayContext,
         detach: bool) -> dict[str, Any] | None:
    with np.errstate(all="ignore"), _grad_mode(ctx, not detach):
        for name, formula in variant.bindings:
            if name not in split.chunked:
                continue
            try:
                value = ctx.asarray(formula.evaluate(scope, ctx))
            except (ValueError, RuntimeError, IndexError):  # a shape the rows alone do not make
                return None
            if len(value.shape) == 0 or int(value.shape[0]) != rows:
                return None
            scope[name] = value
    return {name: scope[name] for name in split.kept}


def _axes(pattern: tuple[str, ...], ndim: int) -> list[str]:
    """The names of the axes of an array of ``ndim`` axes in a shape pattern, a variadic group's
    one per axis it stands for (``*s`` for 2 axes: ``s[0]``, ``s[1]``)."""
    out: list[str] = []
    for token in pattern:
        if token.startswith("*"):
            out += [f"{token[1:]}[{i}]" for i in range(ndim - (len(pattern) - 1))]
        else:
            out.append(token)
    return out


def _needed(variant: Variant, names: frozenset[str]) -> set[str]:
    """The bindings that names read, directly or through other bindings."""
    bindings = dict(variant.bindings)
    needed: set[str] = set()
    for name, formula in reversed(variant.bindings):
        if name in names or name in needed:
            needed.add(name)
            names = names | formula.names
    return needed & set(bindings)


def _same(a: Any, b: Any) -> bool:
    a, b = _numpy(a), _numpy(b)
    if a.shape != b.shape:
        return False
    if not np.issubdtype(a.dtype, np.floating):
        return bool(np.array_equal(a, b))
    with np.errstate(all="ignore"):
        return bool(np.allclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True))


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _numel(array: Any) -> int:
    return int(np.prod([int(d) for d in array.shape], dtype=np.int64))


class _grad_mode:
    """torch's autograd on or off for a torch context; nothing for NumPy."""

    def __init__(self, ctx: ArrayContext, enabled: bool) -> None:
        self.inner = None
        if ctx.name == "torch":
            import torch

            self.inner = torch.set_grad_enabled(enabled)

    def __enter__(self) -> None:
        if self.inner is not None:
            self.inner.__enter__()

    def __exit__(self, *exc: Any) -> None:
        if self.inner is not None:
            self.inner.__exit__(*exc)
