"""JAX backends natively (``loss_conformance_array_type = "jax"``): handed JAX arrays with 64-bit
floats on, their gradients (JAX's own, through ``jax.vjp``) checked against the oracle to second
order, their shapes drawn from few sizes. The tests that call JAX skip where it is not installed
(it is an optional extra); the others run everywhere."""
from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from loss_conformance import jax_bridge
from loss_conformance.backends import BackendError, FunctionalBackend, load_backend
from loss_conformance.records import FAILING
from tests.helpers import run_suite


@pytest.fixture
def jax():
    return pytest.importorskip("jax")


def test_a_jax_backend_without_jax_is_a_configuration_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)  # import jax raises ImportError
    monkeypatch.setattr(jax_bridge, "_JAX", None)
    module = SimpleNamespace(loss_conformance_array_type="jax", l1_loss=lambda input, target: input)
    with pytest.raises(BackendError, match=r'pip install "loss-conformance\[jax\]"'):
        FunctionalBackend(module, "my_jax_losses")


def test_the_compilation_cache_is_the_users_choice_else_the_users_cache_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(jax_bridge.CACHE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert jax_bridge.compilation_cache_dir(None) == str(tmp_path / "loss-conformance" / "jax")
    assert jax_bridge.compilation_cache_dir("/their/own") is None  # JAX_COMPILATION_CACHE_DIR stands
    monkeypatch.setenv(jax_bridge.CACHE_VARIABLE, str(tmp_path / "here"))
    assert jax_bridge.compilation_cache_dir(None) == str(tmp_path / "here")
    monkeypatch.setenv(jax_bridge.CACHE_VARIABLE, "")
    assert jax_bridge.compilation_cache_dir(None) is None




def test_the_jax_example_conforms_with_its_own_gradients_checked(jax):
    records = run_suite(load_backend("examples.jax_losses"), losses=["l1_loss", "mse_loss"], max_examples=5,
                        checks=("forward", "backward", "gradcheck", "forward_ad"), dtypes=("float64",))
    assert not [(r.loss, r.check, r.reduction, r.message[:200]) for r in records if r.status in FAILING]
    by_check = {}
    for record in records:
        by_check.setdefault(record.check, set()).add(record.status)
    assert by_check["backward"] == {"pass"} and by_check["gradcheck"] == {"pass"}
    assert by_check["forward_ad"] == {"skipped"}  # torch.func cannot see inside a JAX call
    assert all("torch.func" in r.message for r in records if r.check == "forward_ad")


@pytest.mark.parametrize("seed", range(3))
def test_a_wrong_jax_gradient_is_flagged_by_the_backward_check(jax, seed):
    # By name: a worker is spawned, not forked, once JAX runs in this process (another test's call).
    backend = load_backend("tests.standalone_backends:jax_doubled_gradient")
    records = run_suite(backend, losses=["mse_loss"], seed=seed, max_examples=10, checks=("forward", "backward"),
                        dtypes=("float64",))
    assert {r.status for r in records if r.check == "forward"} == {"pass"}
    assert any(r.status == "fail" for r in records if r.check == "backward")


def test_second_derivatives_are_jaxs_own(jax):
    # sum((x - y)^2): its Hessian in x is 2 I, so the Hessian-vector product is 2 v.
    x = torch.tensor([0.5, -1.0, 3.0], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1.0, 2.0, -0.25], dtype=torch.float64)
    v = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    out = jax_bridge.call_function(lambda a, b: jax.numpy.sum(jax.numpy.square(a - b)), [x, y], {})
    (grad,) = torch.autograd.grad(out, x, create_graph=True)
    assert torch.equal(grad.detach(), 2 * (x - y).detach())
    (hvp,) = torch.autograd.grad(grad, x, v)
    assert torch.equal(hvp, 2 * v)


def test_float64_stays_float64(jax):
    # 1 + 2^-40 is no float32 value: with JAX's default (32-bit) floats it would come back as 1.
    x = torch.tensor([1 + 2.0 ** -40], dtype=torch.float64)
    out = jax_bridge.call_function(lambda a: a * 1.0, [x], {})
    assert out.dtype == torch.float64 and out.item() == 1 + 2.0 ** -40


def test_a_function_jit_cannot_trace_runs_eagerly_and_raises_its_own_error(jax):
    def picky(input, target, reduction="mean"):
        if bool(jax.numpy.any(input < 0)):  # Python control flow on values: not traceable
            raise ValueError("input must be non-negative")
        return jax.numpy.mean(input * target)

    x = torch.tensor([0.5, 2.0], dtype=torch.float64)
    assert np.isclose(jax_bridge.call_function(picky, [x, x], {"reduction": "mean"}).item(), 2.125)
    with pytest.raises(ValueError, match="non-negative"):
        jax_bridge.call_function(picky, [-x, x], {"reduction": "mean"})


def test_a_new_numeric_option_is_no_new_compilation(jax):
    jnp = jax.numpy

    def scaled(input, target, delta=1.0, shift=0):
        return jnp.sum(delta * jnp.square(input - target)) + shift

    x = torch.tensor([0.5, -1.0], dtype=torch.float32, requires_grad=True)
    y = torch.tensor([1.0, 2.0], dtype=torch.float32)
    before = len(jax_bridge._TRACED)
    for delta, shift in ((0.5, 1), (1.5, 2), (2.25, 3)):
        out = jax_bridge.call_function(scaled, [x, y], {"delta": delta, "shift": shift})
        (grad,) = torch.autograd.grad(out, x, create_graph=True)
        (second,) = torch.autograd.grad(grad.sum(), x)
        assert out.dtype == torch.float32  # Python numbers stay weakly typed
        assert np.isclose(out.item(), delta * 9.25 + shift) and torch.allclose(grad, 2 * delta * (x - y))
        assert torch.allclose(second, torch.full((2,), 2 * delta))
    assert len(jax_bridge._TRACED) == before + 1


def test_a_function_that_branches_on_a_numeric_option_has_it_fixed(jax):
    jnp = jax.numpy

    def smooth(input, target, beta=1.0):
        if beta == 0:  # Python control flow on the option: it cannot be traced
            return jnp.sum(jnp.abs(input - target))
        return jnp.sum(jnp.square(input - target)) / beta

    x = torch.tensor([0.5, -1.0], dtype=torch.float64)
    y = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert jax_bridge.call_function(smooth, [x, y], {"beta": 0.0}).item() == 3.5
    assert jax_bridge.call_function(smooth, [x, y], {"beta": 2.0}).item() == 9.25 / 2
    assert jax_bridge.call_function(smooth, [x, y], {"beta": 0.0}).item() == 3.5


def test_once_jax_runs_in_this_process_workers_are_spawned_not_forked(jax):
    # A child forked after JAX's runtime started deadlocks on its first JAX call.
    from loss_conformance.workers import process_context

    jax.numpy.ones(2).block_until_ready()
    assert jax_bridge.jax_started() and process_context().get_start_method() == "spawn"
    records = run_suite(load_backend("examples.jax_losses"), losses=["mse_loss"], max_examples=3,
                        checks=("forward", "backward"), dtypes=("float64",))
    assert records and not [(r.check, r.message[:200]) for r in records if r.status in FAILING]
