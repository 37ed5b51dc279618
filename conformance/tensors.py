"""Conversions between generated NumPy cases and torch tensors on a device."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import torch

TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                "float64": torch.float64}


def to_tensors(inputs: Mapping[str, np.ndarray | None], device: str,
               requires_grad: Iterable[str] = ()) -> dict[str, torch.Tensor | None]:
    grad = set(requires_grad)
    out: dict[str, torch.Tensor | None] = {}
    for name, value in inputs.items():
        if value is None:
            out[name] = None
            continue
        tensor = torch.from_numpy(np.array(value, copy=True)).to(device)
        if name in grad and tensor.is_floating_point():
            tensor.requires_grad_(True)
        out[name] = tensor
    return out


def upcast(inputs: Mapping[str, np.ndarray | None]) -> dict[str, np.ndarray | None]:
    """Float inputs as float64 (exactly the values the backend received), indices unchanged."""
    return {k: (v.astype(np.float64) if v is not None and np.issubdtype(v.dtype, np.floating) else v)
            for k, v in inputs.items()}


def to_numpy64(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)
