"""docs/losses.md is written from the specs: a spec changed without regenerating it fails here."""
from __future__ import annotations

import dataclasses

from loss_conformance_reference import shipped_specs
from loss_conformance_reference.losses_doc import PAGE, main, render


def test_the_loss_reference_is_up_to_date():
    assert main(["--check"]) == 0, "docs/losses.md is stale: run python -m loss_conformance_reference.losses_doc"


def test_a_changed_spec_makes_the_page_stale(tmp_path):
    specs = dict(shipped_specs())
    specs["mse_loss"] = dataclasses.replace(specs["mse_loss"], summary="A summary edited in the spec.")
    page = tmp_path / "losses.md"
    page.write_text(render(specs), encoding="utf-8")
    assert main(["--check", "--out", str(page)]) == 1


def test_every_loss_has_its_formula_symbols_and_examples():
    text = PAGE.read_text(encoding="utf-8")
    for spec in shipped_specs().values():
        section = text.split(f'<a id="{spec.id}"></a>', 1)[1].split("<a id=", 1)[0]
        assert spec.latex.strip().splitlines()[0].strip() in section
        for symbol in spec.symbols:
            assert _cell(symbol["en"]) in section and _cell(symbol["zh"]) in section
        for example in spec.examples:
            assert _cell(example.name) in section
        for dev in spec.deviations:
            assert " ".join(dev.reason.split())[:60] in section


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
