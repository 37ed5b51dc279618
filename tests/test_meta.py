"""Meta-tests: the suite flags every deliberately broken backend, on its loss, and passes the
healthy backends over many seeds."""
from __future__ import annotations

import pytest
import torch.nn.functional as F

from conformance.backends import FunctionalBackend, load_backend
from conformance.records import FAILING
from tests.broken import catalogue
from tests.helpers import run_suite

CATALOGUE = catalogue()
HEALTHY = ("torch.nn.functional", "torch.nn", "reference")
SEEDS = range(10)


@pytest.mark.parametrize("broken", CATALOGUE, ids=[b.name for b in CATALOGUE])
def test_broken_backend_is_flagged(broken):
    backend = FunctionalBackend(broken.backend_object(), broken.name)
    records = run_suite(backend, losses=[broken.loss])
    failing = [r for r in records if r.status in FAILING]
    assert failing, f"{broken.name} ({broken.bug_class}) was not flagged"
    assert all(r.status == "fail" for r in failing), [r.message for r in failing if r.status == "error"]


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
            "wrong output shape"} <= set(classes)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_backend_passes(name, seed):
    records = run_suite(load_backend(name), seed=seed, max_examples=5)
    bad = [(r.loss, r.check, r.reduction, r.dtype, r.message[:300]) for r in records if r.status in FAILING]
    assert not bad
