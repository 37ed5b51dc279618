"""Arrays and parameters in a snapshot file, stored exactly: an array is its dtype, its shape and
its bytes (little-endian, base64), so that every value, the sign of a zero and a NaN's payload
come back bit for bit, and an empty shape such as (0, 2, 0) stays what it was."""
from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import numpy as np

# The dtypes a snapshot holds: float inputs and results (results in float64, which holds every
# narrower float exactly), index inputs, masks.
STORED_DTYPES = frozenset({"float16", "float32", "float64", "int64", "int32", "bool"})


class ArrayFormatError(ValueError):
    """A stored array or parameter that cannot be decoded."""


def encode_array(array: np.ndarray) -> dict[str, Any]:
    array = np.asarray(array)
    if array.dtype.name not in STORED_DTYPES:
        raise ValueError(f"cannot store an array of dtype {array.dtype}")
    data = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    return {"dtype": array.dtype.name, "shape": list(array.shape), "base64": base64.b64encode(data).decode("ascii")}


def decode_array(stored: Any) -> np.ndarray:
    if not isinstance(stored, dict) or set(stored) != {"dtype", "shape", "base64"}:
        raise ArrayFormatError("an array must be an object with exactly dtype, shape and base64")
    dtype, shape, text = stored["dtype"], stored["shape"], stored["base64"]
    if dtype not in STORED_DTYPES:
        raise ArrayFormatError(f"unknown array dtype {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                              for n in shape):
        raise ArrayFormatError(f"bad array shape {shape!r}")
    if not isinstance(text, str):
        raise ArrayFormatError("an array's base64 must be a string")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ArrayFormatError(f"bad base64 ({exc})") from None
    little = np.dtype(dtype).newbyteorder("<")
    count = math.prod(shape)
    if len(data) != count * little.itemsize:
        raise ArrayFormatError(f"{len(data)} bytes for {count} values of {dtype} (shape {tuple(shape)})")
    return np.frombuffer(data, dtype=little).astype(np.dtype(dtype), copy=True).reshape(shape)


def encode_value(value: Any) -> Any:
    """A parameter as JSON: a float as itself when finite (JSON keeps every bit of it), otherwise
    tagged; lists and dicts item by item."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": repr(value)}
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    if isinstance(value, dict):
        return {"dict": {k: encode_value(v) for k, v in value.items()}}
    if isinstance(value, np.generic):
        return encode_value(value.item())
    return value


def decode_value(value: Any) -> Any:
    if isinstance(value, list):
        return [decode_value(v) for v in value]
    if isinstance(value, dict):
        if set(value) == {"float"} and value["float"] in ("inf", "-inf", "nan"):
            return float(value["float"])
        if set(value) == {"dict"} and isinstance(value["dict"], dict):
            return {k: decode_value(v) for k, v in value["dict"].items()}
        raise ArrayFormatError(f"bad parameter value {value!r}")
    return value
