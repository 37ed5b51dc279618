"""Messages to and from a backend worker arrive whole and equal, large arrays sent out of band."""
from __future__ import annotations

import multiprocessing as mp
import threading

import numpy as np
import pytest

from loss_conformance import wire
from loss_conformance.execution import Output, Reply, Request


def _round_trip(message):
    here, there = mp.Pipe()
    # The writer in a thread: a large message fills the socket's buffer before the reader starts.
    writer = threading.Thread(target=wire.send, args=(here, message))
    writer.start()
    try:
        return wire.recv(there)
    finally:
        writer.join()
        here.close()
        there.close()


def test_a_request_with_large_small_and_strided_arrays_arrives_equal():
    big = np.random.default_rng(0).standard_normal((300, 1000)).astype(np.float32)  # out of band
    message = Request("call", "mse_loss", {"input": big, "target": big.T, "weight": None,
                                            "small": np.arange(5.0), "index": np.arange(70000)[::3]},
                      {"reduction": "mean"}, "cpu", wrt=("input",), cotangent=np.float64(2.0))
    got = _round_trip(message)
    assert got.op == "call" and got.params == {"reduction": "mean"} and got.wrt == ("input",)
    for name, value in message.inputs.items():
        if value is None:
            assert got.inputs[name] is None
            continue
        assert got.inputs[name].dtype == value.dtype and got.inputs[name].shape == value.shape
        np.testing.assert_array_equal(got.inputs[name], value)
    got.inputs["input"][0, 0] = 1.0  # arrays rebuilt on the received bytes are writable, as pickle's were


def test_a_reply_with_nan_and_inf_and_nothing_arrives_equal():
    values = np.full(100000, np.nan)
    values[::2] = np.inf
    reply = Reply(output=Output("Tensor", "torch.float64", "cpu", (100000,), values), grads={"input": None})
    got = _round_trip(("reply", reply))
    assert got[0] == "reply" and got[1].grads == {"input": None}
    np.testing.assert_array_equal(got[1].output.values, values)
    assert _round_trip(None) is None


@pytest.mark.parametrize("cut", ["before the message", "in an array"])
def test_a_message_cut_short_by_a_dying_sender_is_end_of_file(cut):
    here, there = mp.Pipe()
    array = np.zeros(1 << 20)
    if cut == "in an array":
        # What a sender dying after its pickle and part of an array leaves on the connection.
        buffers = []
        data = wire.pickle.dumps(array, protocol=5, buffer_callback=lambda b: buffers.append(b) or False)
        here.send_bytes(wire._COUNT.pack(1) + wire.struct.pack("!Q", array.nbytes) + data)
        here.send_bytes(b"partial")
    here.close()
    with pytest.raises(EOFError):
        wire.recv(there)
    there.close()
