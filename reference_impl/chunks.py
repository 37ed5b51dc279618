"""Evaluate a spec in chunks of rows, so that the float64 oracle of an input of 2^24 elements and
more holds one chunk's intermediates at a time instead of every intermediate at full size.

The rows are the leading axis of the largest input; the inputs whose pattern starts with the same
dim are cut along it, the others (a class weight) are shared by every chunk. The bindings whose
values keep the rows (the per-element and per-sample ones) are evaluated chunk by chunk; of them,
only those that the rest of the formula reads are kept at full size (the per-sample ``loss``, a
per-sample weight, a per-element error magnitude). The rest (a normaliser summed over the batch, a
magnitude over the whole input, and what depends on them; the reductions) is evaluated once, on
the full inputs and the kept bindings. No spec says that its rows are independent, so a split is
used only where the formula shows it, on a probe of the first rows:

- a binding is chunked where it reads the rows and, on the probe's rows, keeps them on its leading
  axis (a value reduced over the rows, or of another shape, is not a row's), and reads no binding
  of the rest; one that reads no row at all (a flag from a parameter) is evaluated in every chunk;
- the kept bindings of the probe's rows evaluated one row at a time equal those of the rows
  evaluated together (a row that reads another row, through a value taken over the batch in the
  middle of one expression, differs there), and every chunk keeps its rows where the probe did.

Otherwise the formula is evaluated in one piece, as before.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np

from loss_conformance_reference.evaluate import Evaluation, build_env, evaluate
from loss_conformance_reference.formula import ArrayContext
from loss_conformance_reference.model import Layout, LossSpec, Variant

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
    shared: tuple[str, ...] = ()      # bindings that read no row (a flag from a parameter): in every chunk

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
    return RowSplit(rows, chunk_rows, frozenset(cut), (), ())


def evaluate_in_chunks(spec: LossSpec, variant: Variant, inputs: Mapping[str, Any], params: Mapping[str, Any],
                       ctx: ArrayContext, reductions: tuple[str, ...] | None = None, with_magnitude: bool = False,
                       gradient: bool = False, chunk_elements: int = CHUNK_ELEMENTS) -> Evaluation:
    """``evaluate``'s result, computed chunk by chunk where the formula's rows are independent."""
    env, layout = build_env(spec, variant, inputs, params, ctx)
    split = plan_split(variant, layout, env, chunk_elements)
    found = row_bindings(variant, env, split, ctx) if split is not None else None
    if found is None:
        return evaluate(spec, variant, inputs, params, ctx, reductions, with_magnitude, gradient=gradient)
    split, kept = found
    return evaluate(spec, variant, inputs, params, ctx, reductions, with_magnitude, gradient=gradient,
                    precomputed=kept, skip=frozenset(split.chunked))


def row_bindings(variant: Variant, env: Mapping[str, Any], split: RowSplit,
                 ctx: ArrayContext) -> tuple[RowSplit, dict[str, Any]] | None:
    """The split with its chunked and kept bindings found on the probe, and the kept bindings at
    full size, evaluated chunk by chunk (no gradient graph is kept); None where the rows turn out
    not to be independent."""
    split = classify(variant, env, split, ctx)  # type: ignore[assignment]
    if split is None:
        return None
    full: dict[str, Any] = {}
    for start, stop in split.chunks():
        values = evaluate_chunk(variant, env, split, start, stop, ctx, detach=True)
        if values is None:
            return None
        for name, value in values.items():
            if name not in full:  # written in place: a list of chunks and their concatenation would be two copies
                full[name] = ctx.xp.empty((split.rows, *value.shape[1:]), dtype=value.dtype, device=ctx.device)
            elif tuple(full[name].shape[1:]) != tuple(value.shape[1:]):
                return None
            full[name][start:stop] = value
    return split, full


def classify(variant: Variant, env: Mapping[str, Any], split: RowSplit, ctx: ArrayContext) -> RowSplit | None:
    """``split`` with the bindings that are chunked and kept, as the first rows show them; None
    where the rows are not independent or no binding that the rest reads is chunked."""
    probe = min(PROBE_ROWS, split.rows)
    scope = _sliced(env, split, 0, probe)
    chunked: list[str] = []
    shared: list[str] = []
    rest: set[str] = set()
    with np.errstate(all="ignore"), _grad_mode(ctx, False):
        for name, formula in variant.bindings:
            if formula.names & rest:
                rest.add(name)
                continue
            try:
                value = ctx.asarray(formula.evaluate(scope, ctx))
            except (ValueError, RuntimeError, IndexError):  # a shape the rows alone do not make
                rest.add(name)
                continue
            if not formula.names & (split.cut | set(chunked)):
                shared.append(name)
            elif len(value.shape) > 0 and int(value.shape[0]) == probe:
                chunked.append(name)
            else:
                rest.add(name)
                continue
            scope[name] = value
    reads = [f.names for name, f in variant.bindings if name in rest]
    reads += [f.names for table in (variant.reductions, variant.magnitude, variant.gradient_magnitude)
              for f in table.values()]
    read_later = set().union(*reads)
    kept = tuple(name for name in chunked if name in read_later)
    if not kept:
        return None
    split = dataclasses.replace(split, chunked=tuple(chunked), kept=kept, shared=tuple(shared))
    together = {name: scope[name] for name in kept}
    for row in range(probe):
        alone = evaluate_chunk(variant, env, split, row, row + 1, ctx, detach=True)
        if alone is None or not all(_same(alone[name], together[name][row:row + 1]) for name in kept):
            return None
    return split


def evaluate_chunk(variant: Variant, env: Mapping[str, Any], split: RowSplit, start: int, stop: int,
                   ctx: ArrayContext, detach: bool = False) -> dict[str, Any] | None:
    """The kept bindings on rows ``start:stop`` of ``env`` (inputs already sliced to those rows may
    be given in ``env``); None where a chunked binding does not keep the rows on its leading axis."""
    return _run(variant, _sliced(env, split, start, stop), split, stop - start, ctx, detach)


def _sliced(env: Mapping[str, Any], split: RowSplit, start: int, stop: int) -> dict[str, Any]:
    scope = dict(env)
    for name in split.cut:
        if int(scope[name].shape[0]) == split.rows:
            scope[name] = scope[name][start:stop]
    return scope


def _run(variant: Variant, scope: dict[str, Any], split: RowSplit, rows: int, ctx: ArrayContext,
         detach: bool) -> dict[str, Any] | None:
    with np.errstate(all="ignore"), _grad_mode(ctx, not detach):
        for name, formula in variant.bindings:
            if name not in split.chunked and name not in split.shared:
                continue
            try:
                value = ctx.asarray(formula.evaluate(scope, ctx))
            except (ValueError, RuntimeError, IndexError):  # a shape the rows alone do not make
                return None
            if name in split.chunked and (len(value.shape) == 0 or int(value.shape[0]) != rows):
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
