"""Splitting a run's plan into N shards (``run --shard K/N``), for a CI matrix that runs them in parallel.

The checks are grouped by loss, kind of check and device (a group: ``l1_loss backward cpu``, its
reductions and dtypes); the groups are put in the order of a CRC-32 of their name (stable across
processes and platforms, unlike ``hash``), and that list is cut into N runs of equal length. So:

- every check lands in exactly one shard, the same one each time: the split depends only on the
  set of planned checks, not on their order or on the order they run in;
- the shards' sizes differ by at most one check;
- a group is split only where a cut falls in it (N - 1 groups at most): the first check of a group
  in a process pays a setup that the rest reuse (up to a second for a loss's first ``jvp_of_grad``
  at 5 examples, about a fifth of a small run's time), and a group kept together pays it once;
- each shard gets groups of most losses and every kind of check, so the slow ones spread out.

Whole losses would be coarse pieces whose costs differ more than their sizes (24 to 35 checks;
``cross_entropy`` took 2.6 times as long as ``binary_cross_entropy``): over six losses at 5
examples, the slowest of six shards was estimated 1.6 times the ideal with whole losses, 1.4 with
groups, and 1.7 with checks dealt out one by one (which repeats every group's setup in every shard).
Per-check seeds come from the run seed and the check's label (``Runner.check_seed``), so a check
gives the same record in whichever shard it runs.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from loss_conformance.records import CheckId
from loss_conformance_reference.model import LossSpec

_FORM = re.compile(r"\s*([0-9]+)\s*/\s*([0-9]+)\s*")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as CI matrices count
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"K/N"`` with 1 <= K <= N; anything else is a ValueError saying what is expected."""
    match = _FORM.fullmatch(text)
    if match is None:
        raise ValueError(f"expected K/N, two whole numbers with 1 <= K <= N (e.g. 2/3), not {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ValueError(f"{text}: N, the number of shards, must be at least 1")
    if not 1 <= index <= count:
        raise ValueError(f"{text}: K must be between 1 and N (here 1 to {count})")
    return Shard(index, count)


def group_name(cid: CheckId) -> str:
    """The group a check belongs to: its loss, kind of check and device (``l1_loss backward cpu``)."""
    return f"{cid.loss} {cid.check} {cid.device}"


def _order(cid: CheckId) -> tuple[int, str, str]:
    name = group_name(cid)
    return zlib.crc32(name.encode()), name, cid.label()  # the names break the (rare) ties of two CRCs


def assign(checks: Iterable[CheckId], count: int) -> dict[CheckId, int]:
    """The shard (1-based) of every check, for ``count`` shards."""
    order = sorted(set(checks), key=_order)
    return {cid: i * count // len(order) + 1 for i, cid in enumerate(order)}


def select(checks: Sequence[CheckId], shard: Shard) -> list[CheckId]:
    """The checks of ``shard``, in plan order."""
    owner = assign(checks, shard.count)
    return [cid for cid in checks if owner[cid] == shard.index]


def plan_order(run: dict[str, Any], specs: Mapping[str, LossSpec]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A sort key that puts a run's records in the order one unsharded run writes them: backend by
    backend, each in plan order. The plan is rebuilt from ``specs`` (a catalogue) and the run's
    options; a record the plan lacks (a loss not in ``specs``) goes after, by its key."""
    from loss_conformance.report.read import string_list
    from loss_conformance.planning import CHECK_NAMES, WIDTH, plan

    losses = [specs[name] for name in string_list(run.get("losses")) if name in specs]
    dtypes = [d for d in string_list(run.get("dtypes")) if d in WIDTH]
    checks = [c for c in string_list(run.get("checks")) if c in CHECK_NAMES] or CHECK_NAMES
    planned = plan(losses, dtypes, string_list(run.get("devices")), checks)
    position = {(c.loss, c.check, c.reduction, c.dtype, c.device): i for i, c in enumerate(planned)}
    backends = string_list(run.get("backends"))

    def key(record: dict[str, Any]) -> tuple[Any, ...]:
        backend = record["backend"]
        where = position.get((record["loss"], record["check"], record["reduction"], record["dtype"],
                              record["device"]), len(position))
        return (backends.index(backend) if backend in backends else len(backends), backend, where,
                record["loss"], record["check"], record["reduction"], record["dtype"], record["device"])

    return key

