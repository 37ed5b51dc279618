"""Read spec files: YAML -> JSON Schema validation -> compiled ``LossSpec``.

Every failure is a ``SpecError`` naming the file, the line and the field; formulas are compiled
(and so checked against the whitelist) here, before anything runs.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import jsonschema
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from loss_conformance_reference.errors import FormulaError, SpecError
from loss_conformance_reference.formula import Formula, compile_formula
from loss_conformance_reference.formula.scan import Scan
from loss_conformance_reference.limits import read_bounded, spec_data_problem
from loss_conformance_reference.loader_gradients import check_kinks, example_gradients, variant_kinks
from loss_conformance_reference.model import (Deviation, Dim, Example, Gradient, InputSpec, LargeSize, Layout, LossSpec,
                                  ModuleCall, Origin, ParamDomain, ParamSpec, Property, RangeDomain, Tolerance, Variant)
from loss_conformance_reference.when_names import CASE_NAMES, binding_names, layout_names  # noqa: F401 - re-exported
from loss_conformance_reference.yaml_lines import YamlError, format_path, line_of, load_with_lines
from loss_conformance_spec import DEVIATIONS_SCHEMA_PATH, LOSSES_DIR, SCHEMA_PATH


@lru_cache(maxsize=3)
def _validator(path: Path = SCHEMA_PATH) -> jsonschema.protocols.Validator:
    # The shipped schemas are checked against their metaschema by the tests (tests/test_schemas.py),
    # not again by every process that loads a spec: that costs a fifth of a second each time.
    schema = json.loads(path.read_text(encoding="utf-8"))
    return jsonschema.validators.validator_for(schema)(schema)


def _read_validated(path: Path, schema: Path) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """Parse ``path`` and validate it against ``schema`` and the limits; the first error becomes a SpecError."""
    text = read_bounded(path)
    try:
        data, lines = load_with_lines(text)
    except YamlError as exc:
        raise SpecError(str(path), exc.line, exc.field, exc.message) from None
    except (RecursionError, MemoryError):  # a last resort: the limits are meant to stop this first
        raise SpecError(str(path), 1, "(document)", "too large or too deeply nested to load") from None
    schema_problem = _schema_problem(data, schema)
    if schema_problem:
        where, message = schema_problem
        raise SpecError(str(path), line_of(lines, where), format_path(where), message)
    problem = spec_data_problem(data) if schema == SCHEMA_PATH else None
    if problem:
        where, message = problem
        raise SpecError(str(path), line_of(lines, where), format_path(where), message)
    return data, lines


def _schema_problem(data: Any, schema: Path) -> tuple[tuple[Any, ...], str] | None:
    """Where ``data`` first fails ``schema`` (the shallowest error), and why; None when it passes."""
    errors = sorted(_validator(schema).iter_errors(data),
                    key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    return (tuple(errors[0].absolute_path), _schema_message(errors[0])) if errors else None


def read_validated(path: Path | str, schema: Path) -> tuple[Any, dict[tuple[Any, ...], int]]:
    """A YAML file of the user's that ``schema`` describes, and the line of each field."""
    return _read_validated(Path(path), schema)


def validate_data(data: Any, schema: Path, source: str) -> None:
    """Data that did not come from a file (a module's attribute) against ``schema``: a SpecError
    naming ``source`` and the field."""
    problem = _schema_problem(data, schema)
    if problem:
        raise SpecError(source, None, format_path(problem[0]), problem[1])


def _schema_message(error: jsonschema.ValidationError) -> str:
    # jsonschema quotes the whole offending value, which may be most of a 1 MiB file
    if len(error.message) <= 300:
        return error.message
    if error.validator == "maxItems":
        return f"more than {error.validator_value} items"
    return f"does not satisfy the schema's '{error.validator}': {str(error.validator_value)[:100]}"


def spec_paths(directory: Path | None = None) -> list[Path]:
    return sorted((directory or LOSSES_DIR).glob("*.yaml"))


def load_specs(directory: Path | None = None) -> dict[str, LossSpec]:
    """Every spec in ``directory`` (the shipped specs by default), keyed by loss id."""
    specs: dict[str, LossSpec] = {}
    for path in spec_paths(directory):
        spec = load_spec(path)
        if spec.id in specs:
            raise SpecError(str(path), 1, "id", f"loss '{spec.id}' is also specified in {specs[spec.id].path}")
        specs[spec.id] = spec
    return specs


def load_spec(path: Path | str) -> LossSpec:
    path = Path(path)
    data, lines = _read_validated(path, SCHEMA_PATH)
    return _Builder(path, data, lines).build()


def field_line(path: Path | str, where: tuple[Any, ...]) -> int | None:
    """The line of a field of a spec file that loaded (``("examples", 2)``), for messages about it."""
    _, lines = load_with_lines(read_bounded(Path(path)))
    return line_of(lines, where)


def load_deviations(path: Path | str, specs: dict[str, LossSpec]) -> dict[str, tuple[Deviation, ...]]:
    """A user's known-deviations file, keyed by loss; ``when`` formulas compiled in each loss's scope."""
    path = Path(path)
    data, lines = _read_validated(path, DEVIATIONS_SCHEMA_PATH)
    out: dict[str, list[Deviation]] = {}
    for i, item in enumerate(data["deviations"]):
        where = ("deviations", i)
        spec = specs.get(item["loss"])
        if spec is None:
            raise SpecError(str(path), line_of(lines, where + ("loss",)), format_path(where + ("loss",)),
                            f"no loss named '{item['loss']}'")
        builder = _Builder(path, data, lines)
        inputs = sorted({n for v in spec.variants for n in v.inputs})
        scope = inputs + list(spec.params) + [d.name for d in spec.dims.values() if not d.variadic] + \
            layout_names(inputs) + list(CASE_NAMES) + binding_names(spec.variants)
        when = builder.formula(item["when"], scope, where + ("when",)) if "when" in item else None
        out.setdefault(spec.id, []).append(Deviation(tuple(item.get("backends", ("*",))), tuple(item["checks"]),
                                                     item["reason"], item.get("reference", ""), when,
                                                     builder.origin(where + ("when",)),
                                                     tuple(item.get("dtypes", ())),
                                                     builder.torch_versions(item, where),
                                                     bool(item.get("unstable", False)),
                                                     tolerance=Tolerance(**item["tolerance"])
                                                     if "tolerance" in item else None,
                                                     failures=tuple(item.get("failures", ()))))
    return {k: tuple(v) for k, v in out.items()}


class _Builder:
    """Turns validated data into a ``LossSpec``, compiling each formula with the names in scope."""

    def __init__(self, path: Path, data: dict[str, Any], lines: dict[tuple[Any, ...], int]) -> None:
        self.path, self.data, self.lines = path, data, lines

    def error(self, where: tuple[Any, ...], message: str, line_offset: int = 0) -> SpecError:
        line = line_of(self.lines, where)
        return SpecError(str(self.path), line + line_offset if line else None, format_path(where), message)

    def origin(self, where: tuple[Any, ...]) -> Origin:
        return Origin(str(self.path), line_of(self.lines, where), format_path(where))

    def large_size(self, name: str, v: dict[str, Any]) -> LargeSize | None:
        """A dim's sizes in the large check: a range, a rank range for a variadic group, or fill."""
        if "large" not in v:
            return None
        large, where = v["large"], ("dims", name, "large")
        rank = tuple(large["rank"]) if "rank" in large else None
        if rank is not None and "rank" not in v:
            raise self.error(where + ("rank",), "a rank is for a variadic group (a dim with a rank)")
        if rank is not None and rank[0] > rank[1]:
            raise self.error(where + ("rank",), f"rank {rank[0]} is above {rank[1]}")
        if large.get("fill") and ("min" in large or "max" in large):
            raise self.error(where, "a dim that fills takes its size from the element target: no min or max")
        if not large.get("fill") and ("min" in large) != ("max" in large):
            raise self.error(where, "give both min and max, or fill")
        if large.get("min", 0) > large.get("max", 0):
            raise self.error(where + ("min",), f"min {large['min']} is above max {large['max']}")
        return LargeSize(large.get("min"), large.get("max"), rank, bool(large.get("fill", False)))

    def formula(self, text: Any, names: Iterable[str], where: tuple[Any, ...]) -> Formula:
        try:
            return compile_formula(str(text), names)
        except FormulaError as exc:
            offset = exc.lineno - 1 + (1 if "\n" in str(text).strip() else 0)
            raise self.error(where, f"{exc.message} (at '{exc.token}')", offset) from None

    def build(self) -> LossSpec:
        d = self.data
        dims = {name: Dim(name, v["min"], v["max"], tuple(v["rank"]) if "rank" in v else None,
                          self.large_size(name, v)) for name, v in d.get("dims", {}).items()}
        for name, dim in dims.items():
            if dim.min > dim.max:
                raise self.error(("dims", name), f"min {dim.min} is above max {dim.max}")
        fills = [name for name, dim in dims.items() if dim.large and dim.large.fill]
        if len(fills) > 1:
            raise self.error(("dims", fills[1], "large", "fill"), f"only one dim can fill (so does '{fills[0]}')")
        self.dim_names = [n for n, dim in dims.items() if not dim.variadic]
        params = {name: self.param(name, v) for name, v in d["params"].items()}
        self.param_names = list(params)
        top_inputs = d["inputs"]
        variants = tuple(self.variant(i, v, top_inputs, dims) for i, v in enumerate(d["variants"]))
        check_kinks(self, variants)
        input_names = sorted({n for v in variants for n in v.inputs})
        scope = input_names + self.param_names + self.dim_names
        self.check_call(input_names)
        tolerance = {k: Tolerance(**v) for k, v in d["tolerance"].items() if k != "gradient"}
        grad_tol = {k: Tolerance(**v) for k, v in d["tolerance"].get("gradient", {}).items()}
        gradient = d.get("gradient", {})
        reductions = tuple(params["reduction"].values) if "reduction" in params else ("none",)
        return LossSpec(
            id=d["id"], title=d["title"], summary=d["summary"], latex=d["latex"], path=self.path,
            module=ModuleCall(d["module"]["name"], tuple(d["module"].get("init", ())),
                              tuple(d["module"].get("forward", ()))),
            args=tuple(d["call"]["args"]), keywords=tuple(d["call"].get("keywords", ())),
            dims=dims, params=params, variants=variants,
            gradient=Gradient(gradient.get("convention", ""), gradient.get("double_backward", False),
                              self.formula(gradient["smooth_when"], scope, ("gradient", "smooth_when"))
                              if "smooth_when" in gradient else None),
            tolerance=tolerance, grad_tolerance={**tolerance, **grad_tol},
            properties=tuple(self.property(i, p, scope, reductions, variants) for i, p in
                             enumerate(d.get("properties", []))),
            examples=tuple(self.example(i, e, variants, input_names) for i, e in enumerate(d.get("examples", []))),
            deviations=tuple(self.deviation(i, x, scope + layout_names(input_names) + binding_names(variants))
                             for i, x in enumerate(d.get("known_deviations", []))),
            symbols=tuple(d.get("symbols", [])),
        )

    def param(self, name: str, v: dict[str, Any]) -> ParamSpec:
        where = ("params", name)
        domain = []
        for i, alt in enumerate(v.get("domain", [])):
            kind, arg = next(iter(alt.items()))
            if kind == "choice":
                domain.append(ParamDomain("choice", tuple(arg)))
            elif kind == "bool":
                domain.append(ParamDomain("bool", (False, True)))
            elif kind == "callable":
                # Names of callables (the harness maps each to a function for the backend); the
                # formula sees the name, a string, and selects with `a if name == "..." else b`.
                domain.append(ParamDomain("callable", tuple(str(a) for a in arg)))
            else:
                low, high = (self.formula(a, self.dim_names, where + ("domain", i, kind, j)) for j, a in enumerate(arg))
                domain.append(ParamDomain(kind, (), low, high))
        values = tuple(v.get("values", ()))
        if not values and not domain:
            raise self.error(where, "a parameter needs 'values' or 'domain'")
        return ParamSpec(name, v["default"], values, tuple(domain))

    def input(self, name: str, v: dict[str, Any], where: tuple[Any, ...], scope: list[str]) -> InputSpec:
        for key in ("same_shape_as", "broadcast_to", "ties_with"):
            if key in v and v[key] not in scope:
                raise self.error(where + (key,), f"'{v[key]}' is not an input")
        for key in ("classes",):
            if key in v and v[key] not in self.dim_names:
                raise self.error(where + (key,), f"'{v[key]}' is not a dim")
        for key in ("special", "exclude"):
            for i, param in enumerate(v.get(key, [])):
                if param not in self.param_names:
                    raise self.error(where + (key, i), f"'{param}' is not a parameter")
        if "bound" in v and v["bound"] not in self.dim_names:
            raise self.error(where + ("bound",), f"'{v['bound']}' is not a dim")
        if v.get("optional") and "default" not in v:
            raise self.error(where, "an optional input needs a 'default' formula")
        default = self.formula(v["default"], scope + self.param_names + self.dim_names, where + ("default",)) \
            if "default" in v else None
        domain = v.get("domain", "real")
        if isinstance(domain, dict):
            low, high = domain["range"]
            if low > high:
                raise self.error(where + ("domain", "range"), f"low {low} is above high {high}")
            domain = RangeDomain(float(low), float(high), tuple(float(x) for x in domain.get("special", ())),
                                 tuple(domain["interior"]) if "interior" in domain else None)
        return InputSpec(name=name, domain=domain, differentiable=v.get("differentiable", False),
                         optional=v.get("optional", False), default=default,
                         shape=tuple(str(s) for s in v["shape"]) if "shape" in v else None,
                         same_shape_as=v.get("same_shape_as"), broadcast_to=v.get("broadcast_to"),
                         ties_with=v.get("ties_with"), classes=v.get("classes"), special=tuple(v.get("special", ())),
                         terminator=v.get("terminator"), zero_vectors=v.get("zero_vectors", False),
                         row_gaps=tuple(float(g) for g in v.get("row_gaps", ())),
                         exclude=tuple(v.get("exclude", ())), bound=v.get("bound"), min=v.get("min", 0),
                         derive=self.formula(v["derive"], scope + self.param_names + self.dim_names, where + ("derive",))
                         if "derive" in v else None, internal=v.get("internal", False))

    def variant(self, index: int, v: dict[str, Any], top_inputs: dict[str, Any], dims: dict[str, Dim]) -> Variant:
        where = ("variants", index)
        merged = {**top_inputs, **v.get("inputs", {})}
        names = list(merged)
        inputs = {}
        for name, spec in merged.items():
            origin = where + ("inputs", name) if name in v.get("inputs", {}) else ("inputs", name)
            inputs[name] = self.input(name, spec, origin, names)
        for i, p in enumerate(v.get("params", [])):
            if p not in self.param_names:
                raise self.error(where + ("params", i), f"'{p}' is not a parameter")
        layouts = tuple(self.layout(where + ("layouts", i), lay, inputs, dims) for i, lay in enumerate(v["layouts"]))
        scope = names + self.param_names + self.dim_names
        bindings = []
        scopes: dict[str, list[str]] = {}  # each binding -> the names bound before it
        for name, text in v["formula"].items():
            scopes[name] = list(scope)
            if name in scope:
                raise self.error(where + ("formula", name), f"binding '{name}' shadows an input, parameter or dim")
            bindings.append((name, self.scan(text["scan"], scope, where + ("formula", name, "scan"))
                             if isinstance(text, dict) else self.formula(text, scope, where + ("formula", name))))
            scope.append(name)
        reductions = {r: self.formula(t, scope, where + ("reductions", r)) for r, t in v["reductions"].items()}
        declared = self.data["params"].get("reduction", {}).get("values", ["none"])
        if sorted(reductions) != sorted(declared):
            raise self.error(where + ("reductions",), f"reductions {sorted(reductions)} differ from the "
                                                      f"parameter's values {sorted(declared)}")
        magnitude = {r: self.formula(t, scope, where + ("magnitude", r)) for r, t in v.get("magnitude", {}).items()}
        gradient_magnitude = {r: self.formula(t, scope, where + ("gradient_magnitude", r))
                              for r, t in v.get("gradient_magnitude", {}).items()}
        return Variant(v["name"], inputs, tuple(v.get("params", self.param_names)), layouts, tuple(bindings),
                       reductions, magnitude, gradient_magnitude, variant_kinks(self, v["name"], scopes))

    def scan(self, s: dict[str, Any], scope: list[str], where: tuple[Any, ...]) -> Scan:
        """A recurrence: ``carry`` starts at ``init`` and is replaced by ``step`` once per slice
        ``x`` of ``over`` along axis 0, ``t`` being the slice's index; the binding is the last carry."""
        inner = scope + ["carry", "x", "t"]
        return Scan(self.formula(s["init"], scope, where + ("init",)), self.formula(s["over"], scope, where + ("over",)),
                    self.formula(s["step"], inner, where + ("step",)))

    def layout(self, where: tuple[Any, ...], lay: dict[str, Any], inputs: dict[str, InputSpec],
               dims: dict[str, Dim]) -> Layout:
        shapes = {}
        for name, shape in lay["shapes"].items():
            if name not in inputs:
                raise self.error(where + ("shapes", name), f"'{name}' is not an input")
            for i, token in enumerate(shape):
                token = str(token)
                sym = token.lstrip("*")
                if token.isdigit():
                    continue
                if sym not in dims or dims[sym].variadic != token.startswith("*"):
                    raise self.error(where + ("shapes", name, i), f"'{token}' is not a declared "
                                     + ("variadic dim (*name)" if token.startswith("*") else "dim"))
            shapes[name] = tuple(str(t) for t in shape)
        raw = lay.get("unbatched", [])
        unbatched = dict(raw) if isinstance(raw, dict) else {name: 0 for name in raw}
        for i, name in enumerate(unbatched):
            if name not in shapes:
                key = name if isinstance(raw, dict) else i
                raise self.error(where + ("unbatched", key), f"'{name}' has no shape in this layout")
        return Layout(lay["name"], shapes, unbatched)

    def property(self, index: int, p: dict[str, Any], scope: list[str], reductions: tuple[str, ...],
                 variants: tuple[Variant, ...]) -> Property:
        where = ("properties", index)
        outputs = [f"{prefix}_{r}" for r in reductions for prefix in ("out", "orig")]
        substitute = {k: self.formula(t, scope, where + ("with", k)) for k, t in p.get("with", {}).items()}
        for i, name in enumerate(p.get("variants", [])):
            if name not in {v.name for v in variants}:
                raise self.error(where + ("variants", i), f"no variant '{name}'")
        return Property(p["name"], self.formula(p["holds"], scope + outputs, where + ("holds",)),
                        self.formula(p["when"], scope + outputs, where + ("when",)) if "when" in p else None,
                        substitute, tuple(p.get("variants", ())))

    def example(self, index: int, e: dict[str, Any], variants: tuple[Variant, ...], inputs: list[str]) -> Example:
        where = ("examples", index)
        variant = e.get("variant", variants[0].name)
        if variant not in {v.name for v in variants}:
            raise self.error(where + ("variant",), f"no variant '{variant}'")
        for name in e["inputs"]:
            if name not in inputs:
                raise self.error(where + ("inputs", name), f"'{name}' is not an input")
        for name in e.get("params", {}):
            if name not in self.param_names:
                raise self.error(where + ("params", name), f"'{name}' is not a parameter")
        prepare = {k: self.formula(t, inputs, where + ("prepare", k)) for k, t in e.get("prepare", {}).items()}
        gradients = example_gradients(self, e, where, next(v for v in variants if v.name == variant))
        return Example(e["name"], dict(e["inputs"]), e["expected"], variant, dict(e.get("params", {})), prepare,
                       e.get("dtype", "float64"), e.get("decimals"), e.get("input_decimals"),
                       e.get("source", ""), gradients)

    def deviation(self, index: int, x: dict[str, Any], scope: list[str]) -> Deviation:
        where = ("known_deviations", index)
        when = self.formula(x["when"], scope + list(CASE_NAMES), where + ("when",)) if "when" in x else None
        return Deviation(tuple(x["backends"]), tuple(x["checks"]), x["reason"], x["reference"], when,
                         self.origin(where + ("when",)), tuple(x.get("dtypes", ())),
                         self.torch_versions(x, where), bool(x.get("unstable", False)),
                         failures=tuple(x.get("failures", ())))

    def torch_versions(self, x: dict[str, Any], where: tuple[Any, ...]) -> str:
        """A deviation's ``torch`` specifier, checked here: a typo must not silently match nothing."""
        text = x.get("torch", "")
        if text:
            try:
                SpecifierSet(text)
            except InvalidSpecifier:
                raise self.error(where + ("torch",), f"'{text}' is not a version specifier such as '>=2.14' "
                                                      "or '>=2.1,<2.7'") from None
        return text

    def check_call(self, inputs: list[str]) -> None:
        known = set(inputs) | set(self.param_names)
        call = self.data["call"]
        for key in ("args", "keywords"):
            for i, name in enumerate(call.get(key, [])):
                if name not in known:
                    raise self.error(("call", key, i), f"'{name}' is neither an input nor a parameter")
        for key in ("init", "forward"):
            for i, name in enumerate(self.data["module"].get(key, [])):
                if name not in known:
                    raise self.error(("module", key, i), f"'{name}' is neither an input nor a parameter")
