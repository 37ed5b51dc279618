"""Known deviations declared ``unstable: true``: they depend on uninitialised memory, so that a
check may pass by chance where they apply. Such a pass is never reported as a deviation that no
longer occurs, and ``diff`` leaves out the records that go between pass and the deviation."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from loss_conformance.backends import load_backend
from loss_conformance.cli import main
from loss_conformance.report import build_report, write_json
from loss_conformance.planning import plan
from loss_conformance.runner import Runner
from loss_conformance_reference import shipped_specs
from loss_conformance_reference.loader import load_deviations
from tests.report_fixtures import RUN, TIMINGS, failing, record

SPECS = shipped_specs()
UNSTABLE = {"unstable": True, "reason": "uninitialised", "reference": "r", "observed": 1}


def _run_l1_forward(tmp_path: Path, unstable: bool) -> list:
    # A deviation whose condition holds on every example, declared for torch, which conforms: it
    # "no longer occurs" on every example.
    path = tmp_path / "deviations.yaml"
    path.write_text("format: 1\ndeviations:\n  - loss: l1_loss\n    checks: [forward]\n    reason: by chance\n"
                    f"    when: \"numel(input) >= 0\"\n    unstable: {str(unstable).lower()}\n", encoding="utf-8")
    loaded = load_deviations(path, SPECS)["l1_loss"]
    assert [d.unstable for d in loaded] == [unstable]
    specs = {**SPECS, "l1_loss": dataclasses.replace(SPECS["l1_loss"], deviations=loaded)}
    with Runner(specs, load_backend("torch.nn.functional"), 3, 0) as runner:
        return runner.run(plan([specs["l1_loss"]], ["float64"], ["cpu"], ("forward",)))


def test_an_unstable_deviation_that_did_not_occur_is_not_reported_as_fixed(tmp_path):
    records = _run_l1_forward(tmp_path, unstable=True)
    assert records and all(r.status == "pass" for r in records)
    for r in records:
        assert "no longer occurs" not in r.message
        assert r.deviation == {"reason": "by chance", "reference": "", "observed": 0, "unstable": True}


def test_a_stable_deviation_that_did_not_occur_is_reported_as_fixed(tmp_path):
    records = _run_l1_forward(tmp_path, unstable=False)
    assert records and all(r.deviation["no_longer_occurs"] == 3 and "no longer occurs" in r.message for r in records)


def test_the_empty_batch_deviations_of_the_margin_losses_are_unstable():
    for loss in ("multi_margin_loss", "multilabel_margin_loss"):
        flags = {d.reason.split(",")[0]: d.unstable for d in SPECS[loss].deviations}
        assert [u for reason, u in flags.items() if "empty batch" in reason] == [True], flags
        assert sum(flags.values()) == 1
    others = [d for name, spec in SPECS.items() if name not in ("multi_margin_loss", "multilabel_margin_loss")
              for d in spec.deviations if d.unstable]
    assert not others


def _diff(tmp_path: Path, capsys, a: list, b: list) -> tuple[int, str]:
    paths = []
    for name, records in (("a.json", a), ("b.json", b)):
        write_json(build_report(records, TIMINGS, RUN), tmp_path / name)
        paths.append(str(tmp_path / name))
    status = main(["diff", *paths])
    return status, capsys.readouterr().out


def test_diff_leaves_out_a_flip_of_an_unstable_deviation(tmp_path, capsys):
    a = [record("known_deviation", check="forward", deviation=UNSTABLE),
         record("pass", check="properties", deviation={**UNSTABLE, "observed": 0})]
    b = [record("pass", check="forward"), record("known_deviation", check="properties", deviation=UNSTABLE)]
    status, out = _diff(tmp_path, capsys, a, b)
    assert status == 0
    assert "0 changes, 0 unchanged" in out and "2 left out" in out and "unstable" in out


def test_diff_keeps_a_stable_deviation_and_a_new_failure(tmp_path, capsys):
    stable = {k: v for k, v in UNSTABLE.items() if k != "unstable"}
    a = [record("known_deviation", check="forward", deviation=stable),
         record("known_deviation", check="backward", deviation=UNSTABLE)]
    b = [record("pass", check="forward"), failing("fail", check="backward")]
    status, out = _diff(tmp_path, capsys, a, b)
    assert status == 1
    assert "2 changes (new failures 1, other changes 1), 0 unchanged" in out and "left out" not in out
