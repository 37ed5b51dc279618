"""The record of a search that raised nothing: a pass (with what it noticed on the way), a known
deviation observed, no kernel for the dtype, or a skip where no example applied."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from loss_conformance.case import Case
from loss_conformance.causes import Cause
from loss_conformance.checks import CheckContext, NoKernel
from loss_conformance.records import CheckId, Record


@dataclass
class SearchState:
    """What a search of one check saw, example by example."""

    examples: int = 0
    judged: int = 0  # cases the current search judged (not passed over): it ends at its budget
    passed_over: int = 0  # cases a check could not judge (``checks.Rejected``), among ``examples``
    current: Case | None = None
    raised_on: Case | None = None  # the case whose check last raised
    failure: tuple[Case, str] | None = None  # the current search's failure: its smallest case so far
    failure_key: Any = None  # how simple that case's example is (``runner._choices_key``)
    shrink_examples: int = 0  # examples the current search tried after its first failure
    observed: int = 0
    matched_but_passed: int = 0
    held: Any = None  # the deviation whose condition held on an example that passed
    held_unstable: Any = None  # the same, for a deviation declared unstable (uninitialised memory)
    deviation: object = None
    no_kernel: int = 0  # examples where the backend has no kernel for the dtype
    kernel: NoKernel | None = None
    not_applicable: int = 0
    why_not: str = ""
    known: list[Cause] = field(default_factory=list)  # causes already reported: a later search passes over them


def settled(ctx: CheckContext, cid: CheckId, name: str, state: SearchState, check_seed: int, large: bool) -> Record:
    """The record of ``cid``'s search by ``state``, which found no failure."""
    if state.no_kernel:
        missing = _no_kernel(cid, name, state, check_seed)
        if missing.status == "unsupported":
            return missing
    if state.observed:
        dev = state.deviation
        return Record.for_check(cid, name, "known_deviation", examples=state.examples, seed=check_seed,
                                message=("torch's known deviation, inherited: " if dev.inherited  # type: ignore
                                         else "") + dev.reason,  # type: ignore[attr-defined]
                                deviation={"reason": dev.reason, "reference": dev.reference,  # type: ignore
                                           "observed": state.observed,
                                           **({"unstable": True} if dev.unstable else {}),  # type: ignore
                                           **({"inherited_from": "torch.nn.functional"}
                                              if dev.inherited else {}),  # type: ignore
                                           **({"tolerance": vars(dev.tolerance)} if dev.tolerance else {})})
    if state.not_applicable and state.not_applicable >= state.examples - state.passed_over:
        return Record.for_check(cid, name, "skipped", examples=state.examples, seed=check_seed,
                                message=state.why_not)
    notes = [_no_kernel(cid, name, state, check_seed).message] if state.no_kernel else []
    if state.not_applicable:
        notes.append(f"{state.not_applicable} of {state.examples} examples not checked: {state.why_not}")
    notes += [f"at the kink of {kink}: {chosen} ({n} example{'s' if n != 1 else ''})"
              for (kink, chosen), n in sorted(ctx.kink_choices.items())]
    record = Record.for_check(cid, name, "pass", examples=state.examples, seed=check_seed, message="; ".join(notes),
                              detail={"kinks": [{"kink": kink, "chosen": chosen, "examples": n} for (kink, chosen), n
                                                in sorted(ctx.kink_choices.items())]} if ctx.kink_choices else None)
    # One large example passing is no evidence of a fix: over millions of elements a deviation's
    # effect can average out below the tolerance.
    if state.matched_but_passed and not large:
        dev = state.held  # the deviation whose condition held, not the first declared
        record.deviation = {"reason": dev.reason, "reference": dev.reference, "observed": 0,
                            "no_longer_occurs": state.matched_but_passed}
        record.message = (f"a known deviation no longer occurs under torch {torch.__version__}: its condition held "
                          "and the check passed (fixed in this version? scope the entry with torch: '<VERSION')")
    elif state.held_unstable is not None:
        # Said in the record, so that a diff can tell this pass from a fix: it is chance.
        dev = state.held_unstable
        record.deviation = {"reason": dev.reason, "reference": dev.reference, "observed": 0, "unstable": True}
    return record


def _no_kernel(cid: CheckId, name: str, state: SearchState, check_seed: int) -> Record:
    """The record of a search where the backend had no kernel for the dtype on some examples.

    On every example: ``unsupported``, naming the kernel, as the backend's own declaration that it
    lacks the dtype (a third-party backend that raises torch's dispatch error is taken at its word,
    as one that lacks the function is ``not_implemented``: a backend can only hide a wrong value this
    way by raising instead of answering, which no user mistakes for a working kernel). On some
    only: the other examples were checked, and the record says on how many there was no kernel.
    """
    assert state.kernel is not None
    dtype = cid.dtype
    judged = state.examples - state.passed_over  # the cases passed over were never sent
    if state.no_kernel >= judged:
        return Record.for_check(cid, name, "unsupported", examples=state.examples, seed=check_seed,
                                message=f"no {dtype} kernel: {state.kernel.raised} (on all {judged} examples judged)")
    return Record.for_check(cid, name, "pass", examples=state.examples, seed=check_seed,
                            message=f"no {dtype} kernel on {state.no_kernel} of {judged} examples judged "
                                    f"({state.kernel.raised}); the others conform")
