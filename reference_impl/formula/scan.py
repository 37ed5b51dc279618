"""The language's recurrence: a carry updated once per slice of a sequence (CTC's forward
variables, and any other dynamic programme over time)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from loss_conformance_reference.formula.compiler import Formula
from loss_conformance_reference.formula.context import ArrayContext


@dataclass(frozen=True)
class Scan:
    init: Formula
    over: Formula
    step: Formula

    @property
    def names(self) -> frozenset[str]:
        return self.init.names | self.over.names | (self.step.names - {"carry", "x", "t"})

    def evaluate(self, env: Mapping[str, Any], ctx: ArrayContext) -> Any:
        carry = self.init.evaluate(env, ctx)
        sequence = ctx.asarray(self.over.evaluate(env, ctx))
        scope = dict(env)
        for t in range(int(sequence.shape[0])):
            scope.update(carry=carry, x=sequence[t, ...], t=t)
            carry = self.step.evaluate(scope, ctx)
        return carry
