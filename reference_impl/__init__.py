"""The reference implementation: executes the YAML specs on NumPy and on torch (CPU or CUDA)."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from loss_conformance_reference.errors import FormulaError, SpecError
from loss_conformance_reference.evaluate import evaluate, pick_variant
from loss_conformance_reference.loader import load_spec, load_specs
from loss_conformance_reference.catalogue import Catalogue
from loss_conformance_reference.model import LossSpec


@lru_cache(maxsize=1)
def shipped_specs() -> dict[str, LossSpec]:
    """The specs that ship with the package, keyed by loss id (loaded once)."""
    return load_specs()


def reference_loss(loss: str, inputs: Mapping[str, Any], params: Mapping[str, Any] | None = None,
                   variant: str | None = None) -> Any:
    """The shipped spec's value for torch ``inputs``, in float64 and differentiable through autograd."""
    return torch_loss(shipped_specs()[loss], inputs, params, variant)


def torch_loss(spec: LossSpec, inputs: Mapping[str, Any], params: Mapping[str, Any] | None = None,
               variant: str | None = None) -> Any:
    """``spec`` evaluated on torch ``inputs`` (upcast to float64, on their device), through autograd;
    the variant is the one the inputs fit unless named."""
    import torch

    from loss_conformance_reference.formula import torch_context

    tensors = {k: (v.to(torch.float64) if v is not None and v.is_floating_point() else v) for k, v in inputs.items()}
    device = next(v.device for v in tensors.values() if v is not None)
    chosen = spec.variant(variant) if variant else pick_variant(spec, tensors)
    out = evaluate(spec, chosen, tensors, dict(params or {}), torch_context(str(device))).outputs
    return next(iter(out.values()))


__all__ = ["Catalogue", "FormulaError", "LossSpec", "SpecError", "evaluate", "load_spec", "load_specs", "reference_loss",
           "shipped_specs", "torch_loss"]
