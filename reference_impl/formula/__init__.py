"""The spec formula language: parsed through ``ast`` into a whitelist, run on an array namespace."""
from loss_conformance_reference.formula.compiler import Formula, compile_formula
from loss_conformance_reference.formula.context import ArrayContext, numpy_context, torch_context

__all__ = ["ArrayContext", "Formula", "compile_formula", "numpy_context", "torch_context"]
