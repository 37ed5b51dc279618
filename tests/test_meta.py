"""Meta-tests: the suite flags every deliberately broken backend, on its loss, whatever the seed,
and passes the healthy backends over many seeds.

The verdicts must hold regardless of luck: with the locked Hypothesis and with the newest one
(``tox -e newest``), a broken backend is flagged on each of ``BROKEN_SEEDS`` and a healthy one
passes on each of ``HEALTHY_SEEDS``. A plain ``python -m pytest`` (CI) runs every broken backend
over the five seeds (about a minute in all) and the healthy ones over the first
``HEALTHY_SEEDS_IN_CI``; the other seeds are marked ``slow`` (``python -m pytest -m slow``, or
``tox -e newest``): a healthy run checks every loss and takes 30 to 50 s per seed on one core.
``python -m benchmarks.meta_catalogue --generated-only --seeds $(seq 0 19)`` measures the margin.
"""
from __future__ import annotations

import pytest
import torch.nn.functional as F

from loss_conformance.backends import FunctionalBackend, load_backend
from loss_conformance.records import FAILING
from loss_conformance.planning import DEFAULT_CHECKS
from loss_conformance_reference import shipped_specs
from tests.broken import catalogue
from tests.helpers import run_suite

CATALOGUE = catalogue()
HEALTHY = ("torch.nn.functional", "torch.nn", "reference")
BROKEN_SEEDS = range(5)
HEALTHY_SEEDS = range(20)
HEALTHY_SEEDS_IN_CI = 1
HALF_DTYPES = ("float16", "bfloat16")
HALF_SEEDS = range(10)
HALF_SEEDS_IN_CI = 1
# Examples per check of a broken backend's run: run_suite's default, unchanged; the verdict comes
# from what the strategies draw, not from a budget tuned to the catalogue.
BROKEN_EXAMPLES = 20
GENERATED_CHECKS = tuple(c for c in DEFAULT_CHECKS if c != "examples")


def _seeds(broken) -> list:
    """The seeds a broken backend is run on: all of ``BROKEN_SEEDS`` in CI, but for the large
    check's, whose examples take seconds each: the first in CI, the others ``slow``."""
    return [pytest.param(broken, s, id=f"{broken.name}-{s}",
                         marks=pytest.mark.slow if broken.checks == ("large",) and s else ())
            for s in BROKEN_SEEDS]


@pytest.mark.parametrize("broken,seed", [p for b in CATALOGUE for p in _seeds(b)])
def test_broken_backend_is_flagged(broken, seed):
    # Its own loss only, up to the first failing record (the meta-test needs a verdict), and from
    # the generated cases alone: the spec's worked examples flag many of these backends too, but
    # on every seed alike, and would hide a generator that no longer reaches the bug.
    backend = FunctionalBackend(broken.backend_object(), broken.name)
    records = run_suite(backend, losses=[broken.loss], seed=seed, max_examples=BROKEN_EXAMPLES,
                        checks=broken.checks or GENERATED_CHECKS, dtypes=checked_dtypes(broken),
                        stop_at_first_failure=True)
    failing = [r for r in records if r.status in FAILING]
    harness_errors = [(r.check, r.message[:300]) for r in failing if r.status == "error"]
    assert not harness_errors, harness_errors  # ``error`` is the harness failing, never the backend
    assert failing, f"{broken.name} ({broken.bug_class}) was not flagged with seed {seed}"


SIZE_ONLY = [b for b in CATALOGUE if b.checks == ("large",)]


@pytest.mark.parametrize("broken", SIZE_ONLY, ids=[b.name for b in SIZE_ONLY])
def test_a_size_only_bug_passes_every_check_of_a_default_run(broken):
    # Why the large check exists: at the ordinary sizes these backends conform.
    backend = FunctionalBackend(broken.backend_object(), broken.name)
    records = run_suite(backend, losses=[broken.loss], seed=0, max_examples=BROKEN_EXAMPLES, dtypes=("float32",))
    assert records and not [(r.check, r.reduction, r.message[:200]) for r in records if r.status in FAILING]


def checked_dtypes(broken) -> tuple[str, ...]:
    """The broken backend's dtypes that its loss's spec checks (gives a tolerance for)."""
    return tuple(d for d in broken.dtypes if d in shipped_specs()[broken.loss].tolerance)


def test_broken_backends_run_in_a_checked_dtype():
    # A dtype the spec does not check would skip every record: the bug could never be flagged.
    assert all(checked_dtypes(b) for b in CATALOGUE)
    assert any(set(b.dtypes) <= {"float16", "bfloat16"} for b in CATALOGUE)


@pytest.mark.parametrize("broken", CATALOGUE, ids=[b.name for b in CATALOGUE])
def test_broken_backend_changes_only_its_loss(broken):
    # With the healthy-backend runs below, this is what makes "flagged on its loss only" hold:
    # every other loss of the broken backend is torch's own function, which passes.
    obj = broken.backend_object()
    assert getattr(obj, broken.loss) is not getattr(F, broken.loss)
    others = [n for n in dir(F) if not n.startswith("_") and n != broken.loss]
    assert all(getattr(obj, n) is getattr(F, n) for n in others)


def test_catalogue_covers_distinct_bug_classes():
    classes = [b.bug_class for b in CATALOGUE]
    assert len(CATALOGUE) >= 12
    assert len(set(b.name for b in CATALOGUE)) == len(CATALOGUE)
    assert {"wrong reduction", "wrong normaliser", "missing clamp", "ignored weight", "ignore_index mishandled",
            "wrong label smoothing", "overflow at large logits", "wrong class axis for K-dim inputs",
            "probability targets mishandled", "bug only in the backward pass", "wrong output dtype",
            "wrong output shape", "non-contiguous inputs read as contiguous",
            "stable formula switched on past the dtype's overflow threshold",
            "overflow in half precision only", "bug only in forward-mode AD", "bug only under vmap",
            "second derivative wrong at large magnitude", "partial last block dropped at large sizes",
            "class index wraps past 32767"} <= set(classes)


@pytest.mark.parametrize("seed", [pytest.param(s, marks=() if s < HEALTHY_SEEDS_IN_CI else pytest.mark.slow)
                                  for s in HEALTHY_SEEDS])
@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_backend_passes(name, seed):
    records = run_suite(load_backend(name), seed=seed, max_examples=5)
    bad = [(r.loss, r.check, r.reduction, r.dtype, r.status, r.message[:300]) for r in records if r.status in FAILING]
    assert not bad


@pytest.mark.parametrize("seed", [pytest.param(s, marks=() if s < HALF_SEEDS_IN_CI else pytest.mark.slow)
                                  for s in HALF_SEEDS])
@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_backend_passes_in_half_precision(name, seed):
    # Checked, not skipped: every loss with a half tolerance runs; torch's missing CPU kernels are
    # ``unsupported`` (a non-failing status), never a failure.
    records = run_suite(load_backend(name), seed=seed, max_examples=5, dtypes=HALF_DTYPES)
    bad = [(r.loss, r.check, r.reduction, r.dtype, r.status, r.message[:300]) for r in records if r.status in FAILING]
    assert not bad
    # Every loss whose spec gives the dtype a tolerance had its values checked in it, or the record
    # says torch has no kernel for it (``unsupported``): none is skipped.
    specs = shipped_specs()
    checked = {(r.loss, r.dtype) for r in records
               if r.check == "forward" and r.status in ("pass", "known_deviation", "unsupported")}
    assert checked >= {(loss, d) for loss, spec in specs.items() for d in HALF_DTYPES if d in spec.tolerance}


@pytest.mark.parametrize("losses", [pytest.param(["cross_entropy"], id="ci"),
                                    pytest.param(None, id="every-loss", marks=pytest.mark.slow)])
def test_healthy_backend_passes_the_large_check(losses):
    # One example per reduction and loss, inputs of 2^24 elements and more: seconds each.
    records = run_suite(load_backend("torch.nn.functional"), losses=losses, seed=0, checks=("large",),
                        dtypes=("float32",))
    assert records and all(r.check == "large" for r in records)
    bad = [(r.loss, r.reduction, r.status, r.message[:300]) for r in records if r.status in FAILING]
    assert not bad
