"""The loss reference (docs/losses.md), written from the specs so that it cannot drift from them.

    python -m loss_conformance_reference.losses_doc            # rewrite docs/losses.md
    python -m loss_conformance_reference.losses_doc --check    # exit 1 if docs/losses.md is stale

The project's tests run the check, so a spec changed without regenerating the page fails CI.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from loss_conformance_reference.model import Example, InputSpec, LossSpec, ParamSpec, RangeDomain

PAGE = Path(__file__).resolve().parent.parent / "docs" / "losses.md"
HEADER = """# Loss reference

Generated from the specs in `spec/losses/` by `python -m loss_conformance_reference.losses_doc`; do not edit by
hand. For each loss: its formula, its symbols in English and Chinese, inputs and options, reductions,
the gradient convention, tolerances per dtype, the worked examples, and torch's known deviations
from the formula.
"""


def render(specs: Mapping[str, LossSpec]) -> str:
    """The whole page for ``specs``, in id order."""
    ordered = [specs[k] for k in sorted(specs)]
    parts = [HEADER, _index(ordered)]
    parts += [_loss(spec) for spec in ordered]
    return "\n".join(parts).rstrip() + "\n"


def _index(specs: list[LossSpec]) -> str:
    rows = [_row(f"[`{s.id}`](#{s.id})", s.title, ", ".join(s.reductions), ", ".join(s.dtypes),
                 "yes" if s.gradient.double_backward else "no", str(len(s.deviations)))
            for s in specs]
    return "\n".join(["| loss | title | reductions | dtypes | double backward | known deviations |",
                      "|---|---|---|---|---|---|", *rows, ""])


def _loss(spec: LossSpec) -> str:
    lines = [f'<a id="{spec.id}"></a>', f"## {spec.title} (`{spec.id}`)", "", spec.summary, "",
             f"Spec: `spec/losses/{spec.path.name}`; module `torch.nn.{spec.module.name}`.", "",
             "$$", _display(spec.latex), "$$", ""]
    if spec.symbols:
        lines += ["| symbol | name | meaning | 含义 |", "|---|---|---|---|"]
        lines += [_row(f"${s['symbol']}$", f"`{s.get('name', '')}`" if s.get("name") else "", s.get("en", ""),
                       s.get("zh", "")) for s in spec.symbols]
        lines.append("")
    lines += _variants(spec)
    if spec.params:
        lines += ["**Options**", "", "| option | default | values |", "|---|---|---|"]
        lines += [_row(f"`{p.name}`", f"`{p.default!r}`", _param_values(p)) for p in spec.params.values()]
        lines.append("")
    lines += ["**Gradient**", "", spec.gradient.convention.strip() or "The derivative of the formula.",
              f"Double backward is {'promised' if spec.gradient.double_backward else 'not promised'}."
              + (f" Finite differences are taken where `{spec.gradient.smooth_when.text}`."
                 if spec.gradient.smooth_when else ""), ""]
    lines += _tolerances(spec)
    lines += _examples(spec.examples)
    lines += _deviations(spec)
    return "\n".join(lines)


def _variants(spec: LossSpec) -> list[str]:
    lines: list[str] = []
    for variant in spec.variants:
        title = f"**Inputs** (variant `{variant.name}`)" if len(spec.variants) > 1 else "**Inputs**"
        lines += [title, "", "| input | domain | differentiable | shapes |", "|---|---|---|---|"]
        for name, ispec in variant.inputs.items():
            if ispec.internal:
                continue
            shapes = sorted({_shape(lay.shapes[name]) for lay in variant.layouts if name in lay.shapes})
            lines.append(_row(f"`{name}`" + (" (optional)" if ispec.optional else ""), _domain(ispec),
                              "yes" if ispec.differentiable else "no", ", ".join(shapes)))
        lines += ["", "| reduction | formula |", "|---|---|"]
        lines += [_row(f"`{r}`", f"`{f.text}`") for r, f in variant.reductions.items()]
        if variant.bindings:
            lines += ["", "where", "", "```"]
            lines += [f"{name} = {getattr(formula, 'text', '(a scan over slices)')}" for name, formula in variant.bindings]
            lines.append("```")
        lines.append("")
    return lines


def _tolerances(spec: LossSpec) -> list[str]:
    lines = ["**Tolerances** (|actual - expected| <= atol + rtol |expected|)", "",
             "| dtype | values rtol | values atol | gradients rtol | gradients atol |", "|---|---|---|---|---|"]
    for dtype in spec.dtypes:
        value, grad = spec.tolerance[dtype], spec.grad_tolerance.get(dtype)
        lines.append(_row(dtype, _g(value.rtol), _g(value.atol), _g(grad.rtol) if grad else "",
                          _g(grad.atol) if grad else ""))
    return lines + [""]


def _examples(examples: Iterable[Example]) -> list[str]:
    examples = list(examples)
    if not examples:
        return []
    lines = ["**Worked examples**", "", "| example | inputs | options | expected | source |", "|---|---|---|---|---|"]
    for ex in examples:
        inputs = "; ".join(f"{k} = {_value(v)}" for k, v in ex.inputs.items())
        params = ", ".join([f"{k}={v!r}" for k, v in ex.params.items()] + ([f"in {ex.dtype}"] if ex.dtype != "float64" else []))
        lines.append(_row(f"`{ex.name}`", inputs, params, _value(ex.expected), ex.source))
    return lines + [""]


def _deviations(spec: LossSpec) -> list[str]:
    if not spec.deviations:
        return []
    lines = ["**Known deviations of torch**", ""]
    for dev in spec.deviations:
        scope = [f"checks {', '.join(dev.checks)}"]
        if dev.dtypes:
            scope.append(f"dtypes {', '.join(dev.dtypes)}")
        if dev.torch:
            scope.append(f"torch {dev.torch}")
        lines.append(f"- *{', '.join(dev.backends)}*, {'; '.join(scope)}: {' '.join(dev.reason.split())}"
                     + (f" ({dev.reference})" if dev.reference else ""))
    return lines + [""]


def _display(latex: str) -> str:
    """The spec's LaTeX as one display block: a blank line would end it, so paragraphs become
    line breaks."""
    paragraphs = [p.strip() for p in latex.strip().split("\n\n") if p.strip()]
    return " \\\\\n".join(paragraphs)


def _domain(ispec: InputSpec) -> str:
    domain = ispec.domain
    if isinstance(domain, RangeDomain):
        text = f"[{_g(domain.low)}, {_g(domain.high)}]"
        if domain.special:
            text += f", special {', '.join(_g(v) for v in domain.special)}"
    else:
        text = domain
    if ispec.classes:
        text += f" (classes {ispec.classes})"
    return text


def _param_values(param: ParamSpec) -> str:
    if param.values:
        return ", ".join(f"`{v!r}`" for v in param.values)
    described = []
    for d in param.domain:
        if d.kind in ("choice", "callable"):
            described.append(", ".join(f"`{c!r}`" for c in d.choices))
        elif d.kind == "bool":
            described.append("`True`, `False`")
        else:
            low, high = (f.text if f is not None else "" for f in (d.low, d.high))
            described.append(f"{d.kind} in [{low}, {high}]")
    return "; ".join(described)


def _shape(pattern: tuple[str, ...]) -> str:
    return "(" + ", ".join(pattern) + ("," if len(pattern) == 1 else "") + ")"


def _value(value: Any) -> str:
    text = repr(value.tolist() if hasattr(value, "tolist") else value)
    return f"`{text if len(text) <= 80 else text[:77] + '...'}`"


def _g(number: float) -> str:
    return f"{number:g}"


def _row(*cells: str) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loss_conformance_reference.losses_doc", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page differs from the specs")
    parser.add_argument("--out", type=Path, default=PAGE, help=f"the page to write or check (default: {PAGE})")
    args = parser.parse_args(argv)
    from loss_conformance_reference import shipped_specs
    text = render(shipped_specs())
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python -m loss_conformance_reference.losses_doc", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
