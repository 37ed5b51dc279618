"""The standalone snippet of a failing record: the backend's own function called with its own array
type, nothing of this project imported, and the spec's value written in. Run as a user would paste
it into another project's bug report; the value it prints as expected is checked against an
independent implementation of the loss (examples/numpy_losses.py)."""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loss_conformance.backends import FunctionalBackend, load_backend
from tests.helpers import run_suite
from tests.standalone_backends import numpy_wrong_mean

ROOT = Path(__file__).resolve().parents[1]
numpy_losses = importlib.import_module("examples.numpy_losses")  # examples/ is no package: a namespace one


def _failing_forward(backend):
    records = run_suite(backend, losses=["l1_loss"], checks=("forward",), dtypes=("float64",), max_examples=30,
                        shrink=True)
    failing = [r for r in records if r.status == "fail"]
    assert failing, "the wrong mean was not flagged"
    return failing[0]


def _run(snippet: str) -> tuple[dict, np.ndarray]:
    """Execute the snippet; its namespace and the expected value it prints."""
    namespace: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(snippet, "<standalone>", "exec"), namespace)  # noqa: S102 - the snippet under test
    expected = re.search(r"^expected:\s*(.*)$", out.getvalue(), re.M)
    assert expected, out.getvalue()
    return namespace, np.asarray(float(expected.group(1)))


def _independent(namespace: dict, record) -> np.ndarray:
    arrays = {k: np.asarray(namespace[k], dtype=np.float64) for k in ("input", "target", "weight") if k in namespace}
    params = {k: v for k, v in record.counterexample.get("params", {}).items()}
    return np.asarray(numpy_losses.l1_loss(arrays["input"], arrays["target"], weight=arrays.get("weight"), **params))


@pytest.mark.parametrize("name, array_type", [("tests.standalone_backends:numpy_wrong_mean", "numpy"),
                                              ("tests.standalone_backends:torch_wrong_mean", "torch")])
def test_the_call_alone_imports_nothing_of_this_project_and_shows_the_bug(name, array_type):
    record = _failing_forward(load_backend(name))
    snippet = record.standalone
    assert snippet and not re.search(r"^\s*(from|import) (loss_conformance\w*|conformance|reference_impl|spec)\b", snippet, re.M)
    assert ("import torch" in snippet) == (array_type == "torch")
    namespace, expected = _run(snippet)
    actual = np.asarray(namespace["actual"].numpy() if array_type == "torch" else namespace["actual"], dtype=np.float64)
    assert np.allclose(expected, _independent(namespace, record), rtol=1e-12, atol=1e-12, equal_nan=True)
    assert not np.allclose(actual, expected, rtol=1e-6, atol=1e-6, equal_nan=True)  # the bug, reproduced


def test_a_gradient_failure_takes_the_gradient_beside_the_specs(monkeypatch):
    records = run_suite(load_backend("tests.standalone_backends:torch_doubled_gradient"), losses=["l1_loss"],
                        checks=("backward",), dtypes=("float64",), max_examples=30, shrink=True)
    record = next(r for r in records if r.status == "fail")
    printed: list[str] = []
    monkeypatch.setattr("builtins.print", lambda *args: printed.append(" ".join(map(str, args))))
    namespace: dict = {}
    exec(compile(record.standalone, "<standalone>", "exec"), namespace)  # noqa: S102 - the snippet under test
    import torch
    inputs = [namespace[n] for n in ("input", "target", "weight") if n in namespace and namespace[n].requires_grad]
    assert inputs, "no input of the snippet requires a gradient"

    def shown(label: str) -> list:
        line = next(line for line in printed if line.startswith(label + ":"))
        return eval(line.split(":", 1)[1], {"array": np.array, "nan": np.nan, "inf": np.inf,  # noqa: S307
                                            "torch": torch, "tensor": lambda v, **_: np.array(v)})

    got, expected = shown("gradient"), shown("expected gradient")
    params = record.counterexample.get("params", {})
    fresh = [t.detach().clone().requires_grad_() for t in inputs]
    kwargs = {**params, **({"weight": namespace["weight"]} if "weight" in namespace else {})}
    independent = torch.autograd.grad(torch.nn.functional.l1_loss(*fresh[:2], **kwargs).sum(), fresh)
    for want, right, wrong in zip(expected, independent, got):
        assert np.allclose(want, right.numpy(), rtol=1e-12, atol=1e-12)  # the spec's gradient, written in
        assert not np.allclose(wrong, want, rtol=1e-6, atol=1e-6) or not np.any(want)  # the bug


def test_jax_arrays_for_a_jax_backend():
    pytest.importorskip("jax")
    record = _failing_forward(load_backend("tests.standalone_backends:jax_wrong_mean"))
    assert "jnp.asarray(" in record.standalone and 'jax_enable_x64", True' in record.standalone
    # Pasted as is into a fresh interpreter (JAX's runtime then starts there, not in this process).
    shown = record.standalone + (
        "import json\n"
        "print('inputs:', json.dumps({k: numpy.asarray(v, dtype=numpy.float64).tolist() for k, v in dict(globals()).items()"
        " if k in ('input', 'target', 'weight')}))\n"
        "print('type:', type(actual).__module__)\n")
    done = subprocess.run([sys.executable, "-c", shown], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = float(re.search(r"^expected:\s*(.*)$", done.stdout, re.M).group(1))
    arrays = json.loads(re.search(r"^inputs: (.*)$", done.stdout, re.M).group(1))
    assert re.search(r"^type: jax", done.stdout, re.M)
    independent = _independent({k: np.asarray(v) for k, v in arrays.items()}, record)
    assert np.allclose(expected, independent, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_no_standalone_call_for_a_backend_without_a_name_to_import():
    record = _failing_forward(FunctionalBackend(numpy_wrong_mean, "unnamed"))
    assert record.standalone is None and record.reproduce
