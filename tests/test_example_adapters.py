"""The real adapters of examples/: optax's losses (with their capabilities and known-deviations
files) and torch.compile of torch.nn.functional. Each runs only where its library is installed
(optax is not in the lock: ``pip install optax`` or ``tox -e jax``); the torch.compile adapter
runs with the ``aot_eager`` compiler, which needs no C++ toolchain."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OPTAX = ROOT / "examples" / "optax_losses"


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, list[dict]]:
    out = tmp_path / "run.json"
    done = subprocess.run([sys.executable, "-m", "loss_conformance", "run", "--no-torch-baseline", "--quiet",
                           "--json", str(out), *args], cwd=ROOT, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "examples"), **(env or {})})
    assert done.returncode in (0, 1), done.stdout + done.stderr
    return done.returncode, json.loads(out.read_text())["records"]


def _optax(tmp_path: Path, *args: str) -> tuple[int, list[dict]]:
    pytest.importorskip("optax")
    return _run(tmp_path, "--backend", "optax_losses.optax_losses", "--capabilities", str(OPTAX / "capabilities.yaml"),
                "--known-deviations", str(OPTAX / "known_deviations.yaml"), *args)


@pytest.mark.parametrize("seed", ["0", "1"])
def test_optax_conforms_where_it_computes_torchs_loss(tmp_path, seed):
    code, records = _optax(tmp_path, "--loss", "mse_loss", "huber_loss", "smooth_l1_loss", "cross_entropy",
                           "binary_cross_entropy_with_logits", "cosine_embedding_loss", "kl_div",
                           "--dtype", "float64", "--seed", seed, "--max-examples", "20")
    assert code == 0, [(r["loss"], r["check"], r["message"]) for r in records if r["status"] == "fail"]
    unsupported = [r for r in records if r["status"] == "unsupported"]
    assert [r["loss"] for r in unsupported] == ["kl_div"] and "not none" in unsupported[0]["message"]


def test_optax_triplet_loss_is_wrong_for_odd_p(tmp_path):
    # optax raises the differences to the power p without their absolute value
    code, records = _optax(tmp_path, "--loss", "triplet_margin_loss", "--check", "examples", "forward",
                           "--dtype", "float64", "--seed", "0", "--max-examples", "30")
    failing = {r["check"]: r for r in records if r["status"] == "fail"}
    assert code == 1 and {"examples", "forward"} <= set(failing)
    assert "p = 1" in failing["examples"]["message"]


def test_optax_ctc_loss_returns_float64_for_float32_logits(tmp_path):
    code, records = _optax(tmp_path, "--loss", "ctc_loss", "--check", "forward", "--dtype", "float32",
                           "--seed", "0", "--max-examples", "10")
    assert code == 1 and all("output dtype torch.float64 != expected torch.float32" in r["message"]
                             for r in records if r["status"] == "fail")
    # Every reduction: the entry for CTC's unnormalised log-probabilities covers other values, not
    # another dtype on the same inputs.
    assert {r["status"] for r in records if r["check"] == "forward"} == {"fail"}, [
        (r["reduction"], r["status"], r["message"]) for r in records]


@pytest.mark.parametrize("seed", ["0", "1"])
def test_torch_compile_is_compiled_throughout_and_differs_only_where_found(tmp_path, seed):
    # torch's own deviations are granted (soft_margin_loss overflows as torch does); the recompile
    # limits the adapter raises keep every call compiled. The one difference the adapter found: an
    # empty input under the mean, whose backward fails to compile (ZeroDivisionError) where eager
    # torch gives NaN; a torch that fixes it leaves no failure at all.
    code, records = _run(tmp_path, "--backend", "torch_compile_losses", "--inherit-torch-deviations",
                         "--loss", "mse_loss", "soft_margin_loss", "--check", "forward", "backward",
                         "--dtype", "float64", "--seed", seed, "--max-examples", "6",
                         env={"LOSS_CONFORMANCE_COMPILER": "aot_eager"})
    assert not any("fell back to eager" in (r["message"] or "") for r in records)
    assert any(r["status"] == "known_deviation" and r["loss"] == "soft_margin_loss" for r in records)
    failing = [r for r in records if r["status"] == "fail"]
    assert code == (1 if failing else 0)
    for record in failing:
        assert (record["loss"], record["reduction"]) == ("mse_loss", "mean"), record["message"]
        assert "BackendCompilerFailed" in record["message"] and "ZeroDivisionError" in record["message"]
