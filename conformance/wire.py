"""Messages between the harness and a backend worker, with large arrays sent as they lie in memory.

``Connection.send`` pickles a message into one bytes object (a copy of every array in it) and
``Connection.recv`` reads it back through a growing buffer (another copy, and another, as it
grows): for the large check's arrays of 2^24 elements and more, most of a request's time. Here a
message is pickled with protocol 5, its large buffers (NumPy arrays) left out of band: they are
written to the connection straight from the arrays' memory after the pickle, and read straight
into the buffers the arrays are then rebuilt on, without a copy.
"""
from __future__ import annotations

import os
import pickle
import struct
from multiprocessing.connection import Connection
from typing import Any

# Buffers from this size on go out of band; smaller ones stay in the pickle (a write each would cost more).
OUT_OF_BAND_BYTES = 1 << 16
_COUNT = struct.Struct("!I")  # then that many sizes, 8 bytes each ("!Q"), then the pickle


def send(conn: Connection, message: Any) -> None:
    """Send ``message`` (anything picklable) to the other end, which reads it with ``recv``."""
    views: list[memoryview] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        view = buffer.raw()
        if view.nbytes < OUT_OF_BAND_BYTES:
            return True  # in band
        views.append(view)
        return False

    data = pickle.dumps(message, protocol=5, buffer_callback=out_of_band)
    conn.send_bytes(_COUNT.pack(len(views)) + struct.pack(f"!{len(views)}Q", *(v.nbytes for v in views)) + data)
    for view in views:
        _write_all(conn.fileno(), view)


def recv(conn: Connection) -> Any:
    """The next message ``send`` sent; EOFError when the other end closed (or died) mid-message."""
    frame = conn.recv_bytes()
    (count,) = _COUNT.unpack_from(frame)
    sizes = struct.unpack_from(f"!{count}Q", frame, _COUNT.size)
    data = memoryview(frame)[_COUNT.size + 8 * count:]
    buffers = [_read_exactly(conn.fileno(), size) for size in sizes]
    return pickle.loads(data, buffers=buffers)


def _write_all(fd: int, view: memoryview) -> None:
    while view.nbytes:
        view = view[os.write(fd, view):]


def _read_exactly(fd: int, size: int) -> bytearray:
    buffer = bytearray(size)
    view, done = memoryview(buffer), 0
    while done < size:
        if hasattr(os, "readv"):
            got = os.readv(fd, [view[done:]])
        else:  # no readv (Windows): through a chunk
            chunk = os.read(fd, min(size - done, 1 << 20))
            got = len(chunk)
            view[done:done + got] = chunk
        if got == 0:
            raise EOFError("the other end closed the connection in the middle of a message")
        done += got
    return buffer
