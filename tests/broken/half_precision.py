"""A broken backend whose bug shows in half precision only.

Its float32 and float64 results are torch's own; in float16 and bfloat16 it takes the
"fast path" a hand-written half kernel is tempted by: the log-softmax as x - log(sum(exp(x)))
without subtracting the row's maximum first. float16's exp overflows past x = 11.1 and
bfloat16's past 88.7, where a correct kernel stays finite, so the suite flags it only when it runs
a half dtype (``Broken.dtypes``).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from tests.broken import Broken

HALF = (torch.float16, torch.bfloat16)


def cross_entropy_half_without_max_shift(input: torch.Tensor, target: torch.Tensor, *args: Any,
                                         **kwargs: Any) -> torch.Tensor:
    if input.dtype in HALF:
        axis = 1 if input.dim() > 1 else 0
        # log_softmax(log_p) == log_p for a normalised log_p, so torch's cross-entropy of it keeps every
        # option (weights, ignore_index, label smoothing, reductions) and only the overflow is new.
        input = input - torch.log(torch.exp(input).sum(dim=axis, keepdim=True))
    return F.cross_entropy(input, target, *args, **kwargs)


CATALOGUE = (
    Broken("cross_entropy_half_without_max_shift", "overflow in half precision only", "cross_entropy",
           cross_entropy_half_without_max_shift, dtypes=("bfloat16", "float16")),
)
