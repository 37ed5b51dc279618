"""--inherit-torch-deviations: a backend that runs torch's own code (a port, a compiled copy) is held
to the spec with torch's recorded deviations granted, and the report says they are torch's."""
from __future__ import annotations

import json

import pytest

from loss_conformance.cli import main
from loss_conformance_reference import shipped_specs
from loss_conformance_reference.catalogue import Catalogue

# One counterexample per failing check: which checks fail is the question here, not how many causes.
ARGS = ["run", "--backend", "tests.torch_port", "--loss", "kl_div", "--check", "forward",
        "backward", "--no-torch-baseline", "--quiet", "--max-examples", "30", "--counterexamples", "1"]


def _records(tmp_path, *extra: str, seed: int) -> tuple[int, list[dict]]:
    out = tmp_path / f"run{len(extra)}-{seed}-{'-'.join(extra)}.json"
    code = main([*ARGS, "--seed", str(seed), "--json", str(out), *extra])
    return code, json.loads(out.read_text())["records"]


@pytest.mark.parametrize("seed", [0, 1])
def test_torchs_deviations_are_granted_only_when_asked(tmp_path, seed):
    code, plain = _records(tmp_path, seed=seed)
    failing = {(r["loss"], r["check"], r["reduction"], r["dtype"]) for r in plain if r["status"] == "fail"}
    assert code == 1 and failing  # torch's own differences from the spec, not excused for another backend
    code, granted = _records(tmp_path, "--inherit-torch-deviations", seed=seed)
    assert code == 0
    excused = {(r["loss"], r["check"], r["reduction"], r["dtype"]): r for r in granted
               if r["status"] == "known_deviation"}
    assert set(excused) == failing  # exactly the failures, each excused by torch's entry
    for record in excused.values():
        assert record["message"].startswith("torch's known deviation, inherited: ")
        assert record["deviation"]["inherited_from"] == "torch.nn.functional"


def test_inherited_deviations_name_the_backend_and_only_torchs_entries():
    catalogue = Catalogue(shipped_specs()).inheriting_torch_deviations("mypkg.losses")
    for loss, spec in catalogue.items():
        inherited = [d for d in spec.deviations if d.inherited]
        torchs = [d for d in shipped_specs()[loss].deviations if "torch.nn.functional" in d.backends]
        assert len(inherited) == len(torchs)
        assert all(d.backends == ("mypkg.losses",) for d in inherited)


def test_jobs_grant_the_same_deviations(tmp_path):
    _, serial = _records(tmp_path, "--inherit-torch-deviations", seed=0)
    code, parallel = _records(tmp_path, "--inherit-torch-deviations", "--jobs", "2", seed=0)
    assert code == 0
    assert [(r["loss"], r["check"], r["reduction"], r["dtype"], r["status"]) for r in parallel] == \
        [(r["loss"], r["check"], r["reduction"], r["dtype"], r["status"]) for r in serial]
