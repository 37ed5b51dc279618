"""``snapshot record`` and ``snapshot compare``: a snapshot replayed on the backend that recorded it
is identical; a backend that moved one thing (one ULP of one loss's output, a gradient at a tie,
an exception's wording) is classified for that loss and that case only; a file that is not a
usable snapshot exits 2; stored inputs come back bit for bit."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from loss_conformance.case import Case
from loss_conformance.execution import Output
from loss_conformance.layouts import MemoryLayout
from loss_conformance.oracle import Oracle
from loss_conformance.snapshot.arrays import decode_array, decode_value, encode_array, encode_value
from loss_conformance.snapshot.classify import same_bits, ulp_distance
from loss_conformance.kinks import moves_gradient
from loss_conformance.snapshot.corpus import CorpusCase, CorpusOptions, corpus, differentiable
from loss_conformance.snapshot.fileformat import SNAPSHOT_VERSION, SnapshotFileError, digest, read_snapshot, write_snapshot
from loss_conformance.snapshot.replay import Outcome
from loss_conformance.timing import Timings
from loss_conformance_reference import shipped_specs
from loss_conformance.cli import main

LOSSES = ("mse_loss", "margin_ranking_loss", "nll_loss")
BACKENDS = "tests.snapshot_backends"


def cli(capsys: pytest.CaptureFixture[str] | None, *args: str) -> tuple[int, str, str]:
    """The command line, in this process (the backends still run in worker processes): status, stdout, stderr."""
    status = main(list(args))
    if capsys is None:
        return status, "", ""
    out, err = capsys.readouterr()
    return status, out, err


def _record(path: Path, backend: str = "torch.nn.functional", seed: int = 0, losses: tuple[str, ...] = LOSSES) -> None:
    status, _, _ = cli(None, "snapshot", "record", str(path), "--loss", *losses, "--cases", "2", "--seed", str(seed),
                       "--backend", backend, "--quiet")
    assert status == 0 and path.exists()


def _compare(capsys: pytest.CaptureFixture[str], path: Path, backend: str, out: Path) -> tuple[int, dict, str]:
    status, stdout, stderr = cli(capsys, "snapshot", "compare", str(path), "--backend", backend, "--json", str(out),
                                 "--quiet")
    assert status in (0, 1), stderr
    return status, json.loads(out.read_text()), stdout


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("snapshot") / "functional.json"
    _record(path)
    return path


@pytest.fixture(scope="module")
def recorded_refusing_sum(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("snapshot") / "refusing.json"
    _record(path, f"{BACKENDS}:nll_sum_raises")
    return path


def _by_class(comparison: dict) -> dict[str, set[tuple[str, str]]]:
    out: dict[str, set[tuple[str, str]]] = {}
    for case in comparison["cases"]:
        out.setdefault(case["class"], set()).add((case["loss"], case["id"]))
    return out


# --- the healthy path ----------------------------------------------------------------------------

def test_replay_on_the_recording_backend_is_identical_and_exits_0(recorded, tmp_path, capsys):
    status, comparison, stdout = _compare(capsys, recorded, "torch.nn.functional", tmp_path / "c.json")
    assert status == 0, stdout
    assert comparison["identical"] is True
    assert {c["class"] for c in comparison["cases"]} == {"identical"}
    assert set(comparison["summary"]) == set(LOSSES)
    stored = json.loads(recorded.read_text())
    assert len(comparison["cases"]) == sum(len(v) for v in stored["losses"].values())
    for loss in LOSSES:
        assert f"\n{loss} " in stdout  # one table row per loss


@pytest.mark.parametrize("seed", [1, pytest.param(2, marks=pytest.mark.slow), pytest.param(3, marks=pytest.mark.slow)])
def test_healthy_backends_replay_identically_across_seeds(tmp_path, capsys, seed):
    for backend in ("torch.nn", "reference"):
        path = tmp_path / f"{backend}.json"
        _record(path, backend, seed, ("margin_ranking_loss", "nll_loss"))
        status, comparison, stdout = _compare(capsys, path, backend, tmp_path / "c.json")
        assert status == 0, stdout


def test_the_recording_holds_the_worked_examples_generated_cases_and_versions(recorded):
    stored = json.loads(recorded.read_text())
    assert stored["format"] == "loss-conformance-snapshot" and stored["version"] == SNAPSHOT_VERSION
    assert stored["recorded"]["backend"] == "torch.nn.functional"
    assert stored["recorded"]["versions"]["torch"] == torch.__version__
    assert {"python", "numpy", "hypothesis"} <= set(stored["recorded"]["versions"])
    specs = shipped_specs()
    for loss in LOSSES:
        cases = stored["losses"][loss]
        examples = [c for c in cases if c["source"] == "example"]
        assert len(examples) == len(specs[loss].examples)
        generated = [c for c in cases if c["source"] == "generated"]
        assert {(c["reduction"], c["dtype"]) for c in generated} == {
            (r, d) for r in specs[loss].reductions for d in ("float32", "float64")}
        # These three losses promise double backward: a Hessian-vector product (or what it raised) per case.
        with_grads = [c for c in cases if c["result"]["grads"]]
        assert with_grads and all(c["tangents"] and (c["result"]["hvp"] or c["result"]["hvp_raised"])
                                  for c in with_grads)
        assert any(c["result"]["hvp"] for c in with_grads)
    assert len({c["id"] for c in stored["losses"]["mse_loss"]}) == len(stored["losses"]["mse_loss"])


# --- perturbed backends: the right class for the right loss only ---------------------------------

def test_one_ulp_in_one_loss_is_moved_for_that_loss_only(recorded, tmp_path, capsys):
    status, comparison, stdout = _compare(capsys, recorded, f"{BACKENDS}:mse_one_ulp", tmp_path / "c.json")
    assert status == 1
    classes = _by_class(comparison)
    assert set(classes) == {"identical", "moved"}, stdout
    assert {loss for loss, _ in classes["moved"]} == {"mse_loss"}
    for case in comparison["cases"]:
        if case["class"] == "moved":
            assert [(c["what"], c["ulp"]) for c in case["changes"]] == [("output", 1)]
    assert comparison["summary"]["margin_ranking_loss"]["identical"] == len(
        [c for c in comparison["cases"] if c["loss"] == "margin_ranking_loss"])
    assert "mse_loss" in stdout and "moved" in stdout


def test_a_changed_gradient_at_a_tie_is_moved_on_the_tie_example(recorded, tmp_path, capsys):
    """torch.nn.functional's tie gradient against the flat piece's 0: one end of [0, 1] or the other
    (torch 2.13 takes 1, 2.14 takes 0 and replays identically), so never nonconforming."""
    status, comparison, stdout = _compare(capsys, recorded, f"{BACKENDS}:margin_ranking_tie_gradient", tmp_path / "c.json")
    changed = [c for c in comparison["cases"] if c["class"] != "identical"]
    assert {c["loss"] for c in changed} <= {"margin_ranking_loss"}
    assert {c["class"] for c in changed} <= {"moved"}, stdout
    assert status == (1 if changed else 0)
    # Cases without a tie keep their gradients bit for bit.
    assert any(c["loss"] == "margin_ranking_loss" and c["class"] == "identical" for c in comparison["cases"])


TIE_LOSSES = ("margin_ranking_loss", "hinge_embedding_loss")
RIGHT_TO_LEFT = {"kink": "hinge", "then": "derivative 1 (right end)", "now": "derivative 0 (left end)"}


@pytest.fixture(scope="module", params=[0, 1, pytest.param(2, marks=pytest.mark.slow),
                                        pytest.param(3, marks=pytest.mark.slow)])
def recorded_right_end(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hinges that take the active piece's 1 at a tie (torch 2.13's clamp_min), over several seeds."""
    path = tmp_path_factory.mktemp("snapshot") / f"right-{request.param}.json"
    _record(path, f"{BACKENDS}:hinges_right_end", request.param, TIE_LOSSES)
    return path


def test_the_other_end_of_the_subdifferential_is_moved_at_the_named_kink(recorded_right_end, tmp_path, capsys):
    status, comparison, stdout = _compare(capsys, recorded_right_end, f"{BACKENDS}:hinges_left_end", tmp_path / "c.json")
    assert status == 1
    changed = [c for c in comparison["cases"] if c["class"] != "identical"]
    assert {c["class"] for c in changed} == {"moved"}, stdout
    # The worked examples at a tie see the change on every seed, for both losses, and so do the
    # generated cases on a kink, in both dtypes.
    assert {c["loss"] for c in changed if c["id"].startswith("example")} == set(TIE_LOSSES)
    assert {(c["loss"], c["id"]) for c in changed if c["id"].startswith("kink")} == {
        (loss, f"kink default hinge {dtype}") for loss in TIE_LOSSES for dtype in ("float32", "float64")}
    for case in changed:
        for change in case["changes"]:
            assert change["what"].startswith("gradient of") and change["class"] == "moved"
            assert change["kinks"] == [RIGHT_TO_LEFT], change
            assert change["ulp"] > 10**6  # a whole unit of slope (times the cotangent), far beyond the tolerance
        assert f"[{case['id']}]" in stdout
    assert "at the kink of hinge, from derivative 1 (right end) to derivative 0 (left end)" in stdout
    # Cases off the kink replay bit for bit.
    assert sum(c["class"] == "identical" for c in comparison["cases"]) > len(changed)


@pytest.mark.parametrize("backend", ["hinges_twice_the_slope", "hinges_other_branch"])
def test_a_gradient_outside_the_subdifferential_stays_nonconforming(recorded_right_end, tmp_path, capsys, backend):
    status, comparison, stdout = _compare(capsys, recorded_right_end, f"{BACKENDS}:{backend}", tmp_path / "c.json")
    assert status == 1
    changed = [c for c in comparison["cases"] if c["class"] != "identical"]
    assert {c["class"] for c in changed} == {"nonconforming"}, stdout
    assert {c["loss"] for c in changed if c["id"].startswith("example")} == set(TIE_LOSSES)
    for case in changed:
        for change in case["changes"]:
            assert change["class"] == "nonconforming" and "kinks" not in change
            assert "outside the subdifferential at the kink" in change["detail"], change
    assert "at the kink of hinge, from" not in stdout


def test_the_same_tie_cases_move_one_way_and_the_other(recorded_right_end, tmp_path, capsys):
    """Recorded at one end and replayed at the other, or the reverse: the same cases, the derivatives swapped."""
    _, forward, _ = _compare(capsys, recorded_right_end, f"{BACKENDS}:hinges_left_end", tmp_path / "f.json")
    seed = json.loads(recorded_right_end.read_text())["recorded"]["corpus"]["seed"]
    left = tmp_path / "left.json"
    _record(left, f"{BACKENDS}:hinges_left_end", seed, TIE_LOSSES)
    _, backward, stdout = _compare(capsys, left, f"{BACKENDS}:hinges_right_end", tmp_path / "b.json")
    assert _by_class(forward) == _by_class(backward)
    kinks = [ch["kinks"] for c in backward["cases"] for ch in c["changes"]]
    assert kinks and all(k == [{"kink": "hinge", "then": RIGHT_TO_LEFT["now"], "now": RIGHT_TO_LEFT["then"]}]
                         for k in kinks), stdout


def test_a_reworded_exception_is_exception_changed(recorded_refusing_sum, tmp_path, capsys):
    status, comparison, stdout = _compare(capsys, recorded_refusing_sum, f"{BACKENDS}:nll_sum_raises_reworded",
                                          tmp_path / "c.json")
    assert status == 1
    stored = json.loads(recorded_refusing_sum.read_text())
    raised = {("nll_loss", c["id"]) for c in stored["losses"]["nll_loss"] if c["result"]["raised"]}
    assert raised and all("reduction='sum' is not supported" in c["result"]["raised"]
                          for c in stored["losses"]["nll_loss"] if c["result"]["raised"])
    assert _by_class(comparison)["exception_changed"] == raised
    assert set(_by_class(comparison)) == {"identical", "exception_changed"}
    assert "this backend does not support" in stdout


def test_an_exception_that_no_longer_occurs_is_exception_changed(recorded_refusing_sum, tmp_path, capsys):
    status, comparison, _ = _compare(capsys, recorded_refusing_sum, "torch.nn.functional", tmp_path / "c.json")
    assert status == 1
    stored = json.loads(recorded_refusing_sum.read_text())
    raised = {("nll_loss", c["id"]) for c in stored["losses"]["nll_loss"] if c["result"]["raised"]}
    assert _by_class(comparison)["exception_changed"] == raised
    detail = next(c for c in comparison["cases"] if c["class"] == "exception_changed")["changes"][0]["detail"]
    assert detail.startswith("then ValueError: reduction='sum' is not supported; now none")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_ulp_is_classified_for_its_loss_on_other_seeds(tmp_path, capsys, seed):
    # (A tie gradient's convention is the hinges' tests' above, on seeds of their own: torch.nn.functional's
    # depends on the torch version.)
    path = tmp_path / "s.json"
    _record(path, seed=seed, losses=("mse_loss", "margin_ranking_loss"))
    status, comparison, stdout = _compare(capsys, path, f"{BACKENDS}:mse_one_ulp", tmp_path / "c.json")
    assert status == 1, stdout
    changed = [c for c in comparison["cases"] if c["class"] != "identical"]
    assert changed and {(c["loss"], c["class"]) for c in changed} == {("mse_loss", "moved")}, stdout


# --- files that are not usable snapshots: exit 2, nothing written -------------------------------

def _damaged(recorded: Path, tmp_path: Path, how: str) -> Path:
    text = recorded.read_text()
    path = tmp_path / "bad.json"
    if how == "truncated":
        path.write_text(text[: len(text) // 2])
    elif how == "edited":
        document = json.loads(text)
        first = document["losses"]["mse_loss"][0]["inputs"]["input"]
        first["base64"] = ("B" if first["base64"][0] != "B" else "C") + first["base64"][1:]
        path.write_text(json.dumps(document))
    elif how == "foreign":
        path.write_text(json.dumps({"format": "loss-conformance-report", "version": 1, "records": []}))
    elif how == "future":
        document = json.loads(text)
        document["version"] = SNAPSHOT_VERSION + 1
        path.write_text(json.dumps(document))
    elif how == "unknown-loss":
        document = json.loads(text)
        document["losses"]["not_a_loss"] = document["losses"].pop("mse_loss")
        document["digest"] = digest(document["losses"])
        path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize("how, needle", [("truncated", "not JSON"), ("edited", "damaged or was edited"),
                                         ("foreign", "not a loss-conformance snapshot"),
                                         ("future", "newer than this loss-conformance reads"),
                                         ("unknown-loss", "no spec defines: not_a_loss")])
def test_an_unusable_snapshot_exits_2_with_a_clear_message(recorded, tmp_path, capsys, how, needle):
    path = _damaged(recorded, tmp_path, how)
    out = tmp_path / "out.json"
    status, stdout, stderr = cli(capsys, "snapshot", "compare", str(path), "--json", str(out))
    assert status == 2, stdout + stderr
    assert needle in stderr and stdout == ""
    assert not out.exists()


def test_a_missing_snapshot_exits_2(tmp_path, capsys):
    status, _, stderr = cli(capsys, "snapshot", "compare", str(tmp_path / "absent.json"))
    assert status == 2 and "cannot read snapshot" in stderr


def test_record_refuses_an_unknown_loss_before_writing(tmp_path, capsys):
    status, _, stderr = cli(capsys, "snapshot", "record", str(tmp_path / "s.json"), "--loss", "no_such_loss")
    assert status == 2 and "unknown loss no_such_loss" in stderr
    assert not (tmp_path / "s.json").exists()


# --- exact storage --------------------------------------------------------------------------------

def _bits(array: np.ndarray) -> bytes:
    return array.dtype.str.encode() + repr(array.shape).encode() + array.tobytes()


@pytest.mark.parametrize("array", [
    np.zeros((0, 2, 0), dtype=np.float32),
    np.zeros((3, 0), dtype=np.int64),
    np.array(7, dtype=np.int64),
    np.array([[0, 4, 2], [1, 1, 3]], dtype=np.int64),
    np.array([-0.0, 0.0, np.inf, -np.inf, 5e-324, np.finfo(np.float64).max, 1 / 3], dtype=np.float64),
    np.array([-0.0, 1e-45, np.nextafter(np.float32(1), np.float32(2))], dtype=np.float32),
    np.array([np.float16(6.1e-5), np.float16(-65504)], dtype=np.float16),
    np.frombuffer(np.array([0x7FC00001, 0xFFC12345], dtype=np.uint32).tobytes(), dtype=np.float32),  # NaN payloads
])
def test_arrays_round_trip_bit_for_bit(array):
    back = decode_array(json.loads(json.dumps(encode_array(array))))
    assert _bits(back) == _bits(array)


def test_parameters_round_trip_exactly():
    params = {"margin": 0.1 + 0.2, "eps": 5e-324, "beta": math.inf, "ignore_index": -100, "reduction": "sum",
              "log_input": False, "nested": [1.0, -math.inf]}
    back = decode_value(json.loads(json.dumps(encode_value(params), allow_nan=False)))
    assert back == params and all(type(back[k]) is type(v) for k, v in params.items())


def test_snapshot_file_round_trips_inputs_layouts_and_results(tmp_path):
    spec = shipped_specs()["nll_loss"]
    inputs = {"input": np.zeros((0, 2, 0), dtype=np.float32), "target": np.zeros((0, 0), dtype=np.int64),
              "weight": None}
    case = Case("nll_loss", spec.variants[0].name, spec.variants[0].layouts[0].name, "float32", inputs,
                {"reduction": "sum", "ignore_index": 1}, layouts={"input": MemoryLayout("offset", offset=2)})
    case.cotangent = np.array(-0.25)
    case.transform["tangents"] = {"input": np.zeros((0, 2, 0))}
    output = Output("Tensor", "torch.float32", "cpu", (), np.array(-0.0), True)
    outcome = Outcome(output=output, grads={"input": Output("Tensor", "torch.float32", "cpu", (0, 2, 0),
                                                            np.zeros((0, 2, 0)))},
                      hvp={"input": None}, hvp_raised="RuntimeError: no")
    entry = CorpusCase("handmade #0", "generated", "sum", case)
    path = tmp_path / "s.json"
    write_snapshot(path, {"backend": "x"}, {"nll_loss": [(entry, outcome)]}, [])
    [(back, then)] = read_snapshot(path, shipped_specs()).cases["nll_loss"]
    for name, value in inputs.items():
        assert (back.case.inputs[name] is None) if value is None else _bits(back.case.inputs[name]) == _bits(value)
    assert back.case.layouts == case.layouts and back.case.params == case.params
    assert _bits(back.case.cotangent) == _bits(case.cotangent)
    assert same_bits(then.output, output) and np.signbit(then.output.values)
    assert then.grads["input"].shape == (0, 2, 0) and then.hvp == {"input": None}
    assert then.hvp_raised == "RuntimeError: no"


def test_the_corpus_is_the_same_on_every_build():
    spec = shipped_specs()["margin_ranking_loss"]
    options = CorpusOptions(frozenset(spec.args) | frozenset(spec.keywords), cases=2)
    first, second = corpus(spec, options), corpus(spec, options)
    assert [e.id for e in first] == [e.id for e in second]
    for a, b in zip(first, second):
        assert a.case.params == b.case.params
        assert all(_bits(v) == _bits(b.case.inputs[k]) for k, v in a.case.inputs.items() if v is not None)
        assert _bits(a.case.cotangent) == _bits(b.case.cotangent)


@pytest.mark.parametrize("loss", ["l1_loss", "margin_ranking_loss", "hinge_embedding_loss", "cosine_embedding_loss"])
def test_the_corpus_holds_a_case_on_every_declared_kink_in_each_dtype(loss):
    spec = shipped_specs()[loss]
    options = CorpusOptions(frozenset(spec.args) | frozenset(spec.keywords), cases=1)
    oracle = Oracle(spec, "cpu", Timings())
    on_kinks = [e for e in corpus(spec, options) if e.source == "kink"]
    kinks = [k for v in spec.variants for k in v.kinks]
    wanted = {(k.name, dtype) for k in kinks for dtype in options.dtypes}
    # Each case sits on its kink where the loss takes it: its gradient depends on the slope chosen there.
    assert {(k.name, e.case.dtype) for e in on_kinks for k in kinks
            if moves_gradient(oracle, e.case, e.reduction, k, differentiable(spec, e.case))} == wanted
    assert len(on_kinks) == len(wanted) and all(e.case.cotangent is not None for e in on_kinks)


def test_ulp_distance_counts_representable_values():
    start = np.float32(1.5)
    steps = [start]
    for _ in range(5):
        steps.append(np.nextafter(steps[-1], np.float32(np.inf)))
    a, b = np.array([start, 0.0], dtype=np.float64), np.array([steps[5], 0.0], dtype=np.float64)
    assert ulp_distance(a, b, torch.float32) == 5
    smallest = float(np.nextafter(np.float64(0), np.float64(1)))
    # Across zero: -smallest, -0.0 = 0.0, smallest.
    assert ulp_distance(np.array([-smallest]), np.array([smallest]), torch.float64) == 2
    assert ulp_distance(np.array([-0.0]), np.array([0.0]), torch.float64) == 0
    assert ulp_distance(np.array([np.nan]), np.array([1.0]), torch.float64) is None


def test_snapshot_file_error_names_the_file(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("")
    with pytest.raises(SnapshotFileError, match="empty.json"):
        read_snapshot(path, shipped_specs())


def test_help_lists_snapshot_and_its_exit_status(capsys):
    for args, needles in ((["--help"], ("snapshot",)),
                          (["snapshot", "--help"], ("record", "compare", "docs/snapshots.md")),
                          (["snapshot", "record", "--help"], ("--backend", "--loss", "--cases", "Exit status")),
                          (["snapshot", "compare", "--help"], ("--backend", "--json", "identical", "moved",
                                                               "nonconforming", "exception_changed", "Exit status"))):
        with pytest.raises(SystemExit) as exited:
            main(args)
        assert exited.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert all(needle in text for needle in needles), (args, needles)
