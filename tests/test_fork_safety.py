"""A worker is forked only where it can differentiate: once the parent ran a backward pass with an
accelerator visible, torch's autograd engine leaves every later fork unable to (``fork_safety``), and
workers are spawned instead. CI has no accelerator; the last test shows it on a GPU machine."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from loss_conformance import fork_safety, warm, workers
from loss_conformance.execution import Request
from loss_conformance_reference import shipped_specs


@pytest.fixture
def fresh_probe(monkeypatch):
    monkeypatch.setattr(fork_safety, "_known_bad", False)  # what this test finds stays in it


def _child_cannot_differentiate() -> None:
    os._exit(1)  # as a child of a parent whose autograd engine started its device threads


def test_without_an_accelerator_a_fork_always_differentiates(fresh_probe, monkeypatch):
    monkeypatch.setattr(fork_safety, "accelerator_visible", lambda: False)
    monkeypatch.setattr(fork_safety, "_differentiate_or_fail", _child_cannot_differentiate)
    assert fork_safety.autograd_survives_fork()  # nothing to probe


def test_with_an_accelerator_a_child_is_asked(fresh_probe, monkeypatch):
    monkeypatch.setattr(fork_safety, "accelerator_visible", lambda: True)
    assert fork_safety.autograd_survives_fork()  # a real child, on a CPU build: it can
    monkeypatch.setattr(fork_safety, "_differentiate_or_fail", _child_cannot_differentiate)
    assert not fork_safety.autograd_survives_fork()
    assert workers.process_context().get_start_method() == "spawn"
    monkeypatch.setattr(fork_safety, "_differentiate_or_fail", fork_safety._differentiate_or_fail)
    assert not fork_safety.autograd_survives_fork()  # for good: the engine's threads never stop


def test_the_warm_up_does_not_differentiate_where_an_accelerator_is_visible(monkeypatch):
    calls = []
    monkeypatch.setattr(warm, "_warmed", False)
    monkeypatch.setattr(warm, "accelerator_visible", lambda: True)
    monkeypatch.setattr(torch.autograd, "grad", lambda *a, **k: calls.append(a))
    warm.warm_before_fork()
    assert calls == [] and not warm._warmed


@pytest.mark.cuda
def test_a_worker_started_after_a_backward_pass_in_the_parent_differentiates():
    # What the oracle does in the parent before a crashed worker's replacement starts.
    x = torch.ones(2, dtype=torch.float64, requires_grad=True)
    torch.autograd.grad((x * x).sum(), x)
    backend = workers.IsolatedBackend("torch.nn.functional", shipped_specs())  # spawned: a name, not an object
    try:
        reply = backend.run(Request("call", "l1_loss", {"input": np.array([1.0, -2.0]), "target": np.zeros(2)},
                                    {"reduction": "sum"}, "cpu", ("input",), cotangent=np.asarray(1.0)))
    finally:
        backend.close()
    assert reply.grad_raised is None, reply.grad_raised
    assert reply.grads["input"].values.tolist() == [1.0, -1.0]
