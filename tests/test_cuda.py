"""CUDA: the reference runs on the GPU, and the checks take --device cuda. Skipped without a GPU."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from loss_conformance.backends import load_backend
from loss_conformance.records import FAILING
from loss_conformance.planning import plan
from loss_conformance.runner import Runner
from loss_conformance.strategies import case_strategy
from loss_conformance.tensors import to_tensors, upcast
from loss_conformance_reference import shipped_specs
from loss_conformance_reference.evaluate import evaluate
from loss_conformance_reference.formula import numpy_context, torch_context

pytestmark = pytest.mark.cuda
SPECS = shipped_specs()


@pytest.mark.parametrize("loss", sorted(SPECS))
def test_reference_on_cuda_matches_numpy(loss):
    spec = SPECS[loss]

    @settings(max_examples=25, deadline=None, database=None)
    @given(case=case_strategy(spec, "float64", "sum"))
    def check(case):
        variant = spec.variant(case.variant)
        on_gpu = evaluate(spec, variant, to_tensors(upcast(case.inputs), "cuda"), case.params, torch_context("cuda"))
        on_cpu = evaluate(spec, variant, upcast(case.inputs), case.params, numpy_context())
        for reduction, value in on_gpu.outputs.items():
            assert value.device.type == "cuda"
            np.testing.assert_allclose(value.cpu().numpy(), np.asarray(on_cpu.outputs[reduction]), rtol=1e-10,
                                       atol=1e-12)

    check()


@pytest.mark.parametrize("backend", ["torch.nn.functional", "reference"])
def test_suite_on_cuda_passes_healthy_backends(backend):
    with Runner(SPECS, load_backend(backend), 15, 0) as runner:
        records = runner.run(plan(SPECS.values(), ["float32", "float64"], ["cuda"]))
    assert all(r.device == "cuda" for r in records)
    bad = [(r.loss, r.check, r.reduction, r.dtype, r.message[:300]) for r in records if r.status in FAILING]
    assert not bad


def test_cuda_outputs_on_cpu_are_flagged():
    # By name: CUDA is initialised in this process by now, so the worker is spawned and loads it itself.
    with Runner(SPECS, "tests.sample_backends:leaky_cuda", 10, 0) as runner:
        records = runner.run(plan([SPECS["mse_loss"]], ["float32"], ["cuda"], ["forward"]))
    assert all(r.status == "fail" and "device" in r.message for r in records)
