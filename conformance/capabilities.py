"""What a backend declares it supports: losses, variants, reductions, option values, dtypes,
devices, double backward.

Declared in the backend (``loss_conformance_capabilities = {...}``) or in a YAML file passed with
``--capabilities FILE``, in the format of ``spec/capabilities.schema.json``. The searches draw only
inside it: each spec is narrowed (its variants, its reductions, the values of its options) before
the strategies see it, and an option declared ``false`` is never passed. The checks outside it are
left out of the plan and reported once per loss as ``unsupported``, which never fails a run.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from loss_conformance.records import CheckId, Record
from loss_conformance_reference.errors import SpecError
from loss_conformance_reference.loader import read_validated, validate_data
from loss_conformance_reference.model import LossSpec, ParamSpec
from loss_conformance_reference.yaml_lines import format_path, line_of
from loss_conformance_spec import CAPABILITIES_SCHEMA_PATH

ATTRIBUTE = "loss_conformance_capabilities"


@dataclass(frozen=True)
class Support:
    """What a backend supports of one loss; None: everything the spec has."""

    variants: tuple[str, ...] | None = None
    reductions: tuple[str, ...] | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # name -> False or a tuple of values
    dtypes: tuple[str, ...] | None = None
    devices: tuple[str, ...] | None = None
    double_backward: bool = True

    def allows(self, cid: CheckId) -> bool:
        return ((self.reductions is None or cid.reduction in ("*", *self.reductions))
                and (self.dtypes is None or cid.dtype in ("*", *self.dtypes))
                and (self.devices is None or cid.device in self.devices)
                and (self.double_backward or cid.check != "jvp_of_grad"))

    def never_passed(self) -> frozenset[str]:
        return frozenset(name for name, value in self.options.items() if value is False)

    def narrow(self, spec: LossSpec) -> LossSpec:
        """``spec`` as far as the backend supports it, for the strategies and the checks."""
        params = dict(spec.params)
        if self.reductions is not None and "reduction" in params:
            params["reduction"] = _only(params["reduction"], self.reductions)
        for name, values in self.options.items():
            if isinstance(values, tuple) and name in params:
                params[name] = _only(params[name], values)
        variants = spec.variants if self.variants is None else tuple(v for v in spec.variants
                                                                     if v.name in self.variants)
        gradient = spec.gradient if self.double_backward else dataclasses.replace(spec.gradient,
                                                                                  double_backward=False)
        names = {v.name for v in variants}
        examples = tuple(e for e in spec.examples if e.variant in names and (self.dtypes is None or e.dtype in self.dtypes)
                         and all(not params[k].values or v in params[k].values for k, v in e.params.items()))
        return dataclasses.replace(spec, params=params, variants=variants, gradient=gradient, examples=examples)

    def describe(self, spec: LossSpec) -> str:
        """What is left out, in words: the message of the loss's ``unsupported`` record."""
        parts = []
        for label, declared, every in (("variants", self.variants, [v.name for v in spec.variants]),
                                       ("reductions", self.reductions, spec.reductions),
                                       ("dtypes", self.dtypes, None), ("devices", self.devices, None)):
            if declared is not None:
                left = [x for x in every if x not in declared] if every is not None else []
                parts.append(f"{label} {', '.join(declared)}" + (f" (not {', '.join(left)})" if left else ""))
        for name, values in self.options.items():
            if values is False:
                parts.append(f"{name} never passed")
            elif isinstance(values, tuple):
                parts.append(f"{name} in {list(values)}")
        if not self.double_backward and spec.gradient.double_backward:
            parts.append("no double backward")
        return "declared support: " + "; ".join(parts)


def _only(param: ParamSpec, values: Iterable[Any]) -> ParamSpec:
    """The parameter drawn from ``values`` only (the default stays the backend's own)."""
    return dataclasses.replace(param, values=tuple(values), domain=())


@dataclass(frozen=True)
class Capabilities:
    """A backend's declared support, per loss; ``losses`` None: every loss, within the defaults."""

    source: str
    losses: Mapping[str, Support] | None
    default: Support

    def support(self, loss: str) -> Support | None:
        """The loss's support; None when the backend declares it does not support the loss at all."""
        if self.losses is None:
            return self.default
        return self.losses.get(loss)

    def narrow(self, specs: Mapping[str, LossSpec]) -> dict[str, LossSpec]:
        return {loss: support.narrow(spec) if (support := self.support(loss)) else spec
                for loss, spec in specs.items()}

    def split(self, checks: Iterable[CheckId], specs: Mapping[str, LossSpec], backend: str,
              implemented: Callable[[LossSpec], bool] = lambda spec: True) -> tuple[list[CheckId], list[Record]]:
        """The checks inside the support, and one ``unsupported`` record per loss with checks outside it.
        The checks of a loss the backend does not implement are kept: they are ``not_implemented``."""
        kept, left_out = [], {}
        for cid in checks:
            support = self.support(cid.loss)
            if not implemented(specs[cid.loss]) or support is not None and support.allows(cid):
                kept.append(cid)
            else:
                left_out.setdefault(cid.loss, support)
        records = []
        for loss, support in left_out.items():
            message = (support.describe(specs[loss]) if support is not None
                       else f"{loss} is not among the losses {self.source} declares")
            records.append(Record(loss, "*", "*", "*", "*", backend, "unsupported", message=message))
        return kept, records


def load_capabilities(path: str | Path, specs: Mapping[str, LossSpec]) -> Capabilities:
    """A ``--capabilities`` YAML file; an error names the file, the line and the field."""
    data, lines = read_validated(path, CAPABILITIES_SCHEMA_PATH)
    return _build(data, specs, str(path), lambda where: line_of(lines, where))


def module_capabilities(declared: Any, backend: str, specs: Mapping[str, LossSpec]) -> Capabilities:
    """A backend's ``loss_conformance_capabilities`` attribute, checked like a file."""
    source = f"{backend}.{ATTRIBUTE}"
    validate_data(declared, CAPABILITIES_SCHEMA_PATH, source)
    return _build(declared, specs, source, lambda where: None)


def _build(data: dict[str, Any], specs: Mapping[str, LossSpec], source: str, line: Any) -> Capabilities:
    def error(where: tuple[Any, ...], message: str) -> SpecError:
        return SpecError(source, line(where), format_path(where), message)

    default = Support(dtypes=_tuple(data.get("dtypes")), devices=_tuple(data.get("devices")),
                      double_backward=data.get("double_backward", True))
    if "losses" not in data:
        return Capabilities(source, None, default)
    losses = {}
    for loss, entry in data["losses"].items():
        where = ("losses", loss)
        if loss not in specs:
            raise error(where, f"no loss named '{loss}'")
        spec, entry = specs[loss], entry or {}
        _known(error, where + ("variants",), entry.get("variants", ()), [v.name for v in spec.variants], "variant")
        _known(error, where + ("reductions",), entry.get("reductions", ()), spec.reductions, "reduction")
        options = {}
        optional = {n for v in spec.variants for n, i in v.inputs.items() if i.optional}
        for name, values in entry.get("options", {}).items():
            at = where + ("options", name)
            if name == "reduction":
                raise error(at, "give the reductions under 'reductions'")
            if name not in spec.params and name not in optional:
                raise error(at, f"'{name}' is neither a parameter nor an optional input of {loss}")
            if isinstance(values, list):
                if name in optional:
                    raise error(at, f"'{name}' is an input: true or false, not a list of values")
                allowed = spec.params[name].values
                bad = [v for v in values if allowed and v not in allowed]
                if bad:
                    raise error(at, f"{bad[0]!r} is not a value of {name} ({', '.join(map(repr, allowed))})")
                values = tuple(values)
            if values is not True:
                options[name] = values
        losses[loss] = Support(_tuple(entry.get("variants")), _tuple(entry.get("reductions")), options,
                               _tuple(entry.get("dtypes", data.get("dtypes"))),
                               _tuple(entry.get("devices", data.get("devices"))),
                               entry.get("double_backward", default.double_backward))
    return Capabilities(source, losses, default)


def _known(error: Any, where: tuple[Any, ...], names: Iterable[str], known: Iterable[str], kind: str) -> None:
    known = list(known)
    for i, name in enumerate(names):
        if name not in known:
            raise error(where + (i,), f"no {kind} '{name}' (the spec has {', '.join(known)})")


def _tuple(value: Any) -> tuple[Any, ...] | None:
    return tuple(value) if value is not None else None
