"""A backend's outputs cross from its worker in the narrowest dtype that holds them exactly, and
reach the checks in float64, with the same values."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from loss_conformance.backends import load_backend
from loss_conformance.execution import Reply, Request, describe, widened
from loss_conformance.workers import IsolatedBackend
from loss_conformance_reference import shipped_specs

# Values no float64 rounding of them could hide: each is exact in its dtype and none in the next narrower.
EXACT = {torch.float32: [1 + 2.0 ** -23, -3.0e38, 1.0e-45],
         torch.float16: [1 + 2.0 ** -10, -65504.0, 6.0e-8],
         torch.bfloat16: [1 + 2.0 ** -7, -3.0e38, 1.0e-38]}


@pytest.mark.parametrize("dtype,sent", [(torch.float64, np.float64), (torch.float32, np.float32),
                                        (torch.float16, np.float16), (torch.bfloat16, np.float32)])
def test_values_are_sent_narrow_and_received_in_float64_unchanged(dtype, sent):
    tensor = torch.tensor(EXACT.get(dtype, [1 + 2.0 ** -52, 1e-308, -1e308]), dtype=dtype)
    output = describe(tensor)
    assert output.values.dtype == sent and output.dtype == str(dtype)
    received = widened(Reply(output=output, grads={"input": output, "target": None}, derived={"api": output}))
    for got in (received.output, received.grads["input"], received.derived["api"]):
        assert got.values.dtype == np.float64
        assert np.array_equal(got.values, tensor.to(torch.float64).numpy())
    assert received.grads["target"] is None


def test_a_reply_already_in_float64_is_passed_on_as_it_is():
    reply = Reply(output=describe(torch.ones(3, dtype=torch.float64)), grads={"input": None})
    assert widened(reply) is reply


def test_what_the_backend_answered_is_a_copy_its_later_steps_cannot_change():
    for dtype in (torch.float64, torch.float32):
        tensor = torch.ones(3, dtype=dtype)
        output = describe(tensor)
        tensor.add_(1.0)  # as a backward pass that reuses its output's memory would
        assert output.values.tolist() == [1.0, 1.0, 1.0]


def test_a_float32_call_through_the_worker_reaches_the_parent_in_float64():
    specs = shipped_specs()
    backend = IsolatedBackend(load_backend("torch.nn.functional"), specs)
    try:
        x, y = np.array([1 + 2.0 ** -23, 3.0], dtype=np.float32), np.array([0.5, -1.0], dtype=np.float32)
        reply = backend.run(Request("call", "l1_loss", {"input": x, "target": y}, {"reduction": "none"}, "cpu",
                                    ("input",), cotangent=np.ones(2)))
    finally:
        backend.close()
    assert reply.output.dtype == "torch.float32" and reply.output.values.dtype == np.float64
    assert reply.output.values.tolist() == [float(np.float32(1 + 2.0 ** -23) - np.float32(0.5)), 4.0]
    assert reply.grads["input"].values.dtype == np.float64 and reply.grads["input"].values.tolist() == [1.0, 1.0]
