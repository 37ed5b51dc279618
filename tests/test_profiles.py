"""Generation depends on the seed alone: not on the backend's source, not on other local modules,
not on files left in the working directory; and a command-line run writes nothing there.

Hypothesis (6.131 and later) draws, now and then, literals it mines from every local module in
``sys.modules``; ``loss_conformance.profiles.ignore_local_constants`` turns that off. These tests
fail if a Hypothesis release moves the internal it replaces (the harness then still runs, but
would silently draw the literals again).
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, seed
from hypothesis.configuration import set_hypothesis_home_dir

from loss_conformance import profiles
from loss_conformance.profiles import hypothesis_settings, ignore_local_constants, private_storage_directory
from loss_conformance.strategies import case_strategy
from loss_conformance_reference import shipped_specs

ROOT = Path(__file__).resolve().parent.parent

# A backend module full of literals inside the suite's domains: reals in [-10, 10] and
# [-1e3, 1e3], logits up to 1e5, probabilities, weights, class counts; ints outside (-100, 100),
# which Hypothesis does not mine, do not matter here.
LITERAL_MODULE = textwrap.dedent("""
    SCALES = (3.25, -7.75, 1.125, -0.3125, 9.5, 0.0625, 0.8125, 0.4375, 2.71828, -3.14159)
    WIDE = (123.456, -987.25, 511.5, -42.125, 777.75, 65.5, -250.0625)
    LOGITS = (12345.5, -23456.25, 54321.0, -99999.5, 31415.9)
    SMALL = (0.001953125, 0.99609375, 0.333251953125, 0.6669921875)
    COUNTS = (128, 255, 1000, 4096, -512, 65537)


    def mse_loss(input, target, reduction="mean", weight=None):
        return ((input - target) ** 2 * 1.0078125).mean()
""")

# Arrays are drawn from bytes (loss_conformance.choices), which take no mined literal; float
# parameters (huber_loss's delta, cross_entropy's label_smoothing) do.
LOSSES = ("mse_loss", "cross_entropy", "binary_cross_entropy", "huber_loss")


def drawn(examples: int = 60, run_seed: int = 20240229) -> list[str]:
    """The cases the suite's settings draw under one seed, for a few losses, as text."""
    cases: list[str] = []
    for loss in LOSSES:
        spec = shipped_specs()[loss]

        def collect(case) -> None:  # noqa: ANN001
            cases.append(repr(case.describe()))

        run = hypothesis_settings(examples, shrink=False)(seed(run_seed)(
            given(case_strategy(spec, "float64", spec.reductions[0]))(collect)))
        with np.errstate(all="ignore"):
            run()
    return cases


def _hypothesis_mines_local_constants() -> bool:
    return importlib.util.find_spec("hypothesis.internal.constants_ast") is not None


def test_local_constants_are_off_wherever_hypothesis_mines_them():
    # False only where this Hypothesis has no constants mining at all; if it has, but the hook
    # moved, ignore_local_constants must be taught the new one.
    assert ignore_local_constants() is _hypothesis_mines_local_constants()
    assert ignore_local_constants() is ignore_local_constants()  # idempotent


def test_same_seed_same_cases_whatever_local_modules_are_loaded(tmp_path, monkeypatch):
    ignore_local_constants()
    before = drawn()
    assert len(before) == 60 * len(LOSSES)
    many_before = drawn(300)

    module_dir = tmp_path / "user_code"
    module_dir.mkdir()
    (module_dir / "literal_backend.py").write_text(LITERAL_MODULE)
    monkeypatch.syspath_prepend(str(module_dir))
    importlib.import_module("literal_backend")
    try:
        assert drawn() == before

        # The control: with Hypothesis' own source of local constants back, the same seed draws
        # other cases, so the comparison above could see a difference if there were one.
        from hypothesis.internal.conjecture import providers
        original = getattr(providers._get_local_constants, "original", None)
        if original is None:
            pytest.skip("this Hypothesis has no local constants to turn back on")
        monkeypatch.setattr(providers, "_get_local_constants", original)
        monkeypatch.setattr(profiles, "ignore_local_constants", lambda: False)  # or building settings re-applies it
        set_hypothesis_home_dir(tmp_path / "hypothesis-home")  # its cache goes there, not in the cwd
        providers.CONSTANTS_CACHE.cache.clear()
        try:
            assert drawn(300) != many_before
        finally:
            set_hypothesis_home_dir(None)
    finally:
        sys.modules.pop("literal_backend", None)
        monkeypatch.undo()
        from hypothesis.internal.conjecture import providers
        getattr(providers, "CONSTANTS_CACHE").cache.clear()
    assert ignore_local_constants()
    assert drawn() == before


def _run_python(code: str, cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HYPOTHESIS_STORAGE_DIRECTORY", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_loading_the_pytest_plugin_leaves_hypothesis_as_it_is(tmp_path):
    # A user's pytest session loads the plugin without running conformance checks: their own
    # Hypothesis tests keep the local constants. Generating a conformance case turns them off.
    out = _run_python(textwrap.dedent("""
        from hypothesis.internal.conjecture import providers
        marked = lambda: getattr(providers._get_local_constants, "_loss_conformance_no_local_constants", False)
        import loss_conformance.pytest_plugin
        print(marked())
        import loss_conformance.strategies
        print(marked())
    """), tmp_path)
    expected = "False\nTrue\n" if _hypothesis_mines_local_constants() else "False\nFalse\n"
    assert out == expected


def test_a_command_line_run_writes_nothing_in_the_working_directory(tmp_path):
    (tmp_path / "literal_backend.py").write_text(LITERAL_MODULE)
    _run_python(textwrap.dedent("""
        import sys
        from loss_conformance.cli import main
        # A failing run (the backend is off by 2^-7), where Hypothesis saves what it found.
        code = main(["run", "--backend", "literal_backend", "--loss", "mse_loss", "--max-examples", "3",
                     "--check", "forward", "backward", "--counterexamples", "1", "--no-torch-baseline", "--quiet"])
        sys.exit(0 if code in (0, 1) else code)
    """), tmp_path)
    assert not (tmp_path / ".hypothesis").exists()
    assert {p.name for p in tmp_path.iterdir()} - {"__pycache__"} == {"literal_backend.py"}  # Python's own cache


def test_private_storage_directory(tmp_path, monkeypatch):
    from hypothesis.configuration import storage_directory

    monkeypatch.delenv("HYPOTHESIS_STORAGE_DIRECTORY", raising=False)
    try:
        path = private_storage_directory()
        assert path.is_dir() and path.name.startswith("loss-conformance-hypothesis-")
        assert storage_directory("constants").path == path / "constants"
        assert not path.is_relative_to(Path.cwd())
    finally:
        set_hypothesis_home_dir(None)
    monkeypatch.setenv("HYPOTHESIS_STORAGE_DIRECTORY", str(tmp_path))
    assert private_storage_directory() == tmp_path
