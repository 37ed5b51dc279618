"""Many indices into a finite list from few Hypothesis choices: strings of bytes.

Drawing an array element by element costs Hypothesis a choice, a span and its bookkeeping per
element, and was most of what generating a case cost. A bytes choice holds many elements at once;
Hypothesis generates, mutates and shrinks it as one choice, each byte towards 0, so each element
still shrinks towards the first (simplest) entry of its list.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from hypothesis import strategies as st


# Bytes per choice. Hypothesis replays a choice whose constraints changed (a bytes string of another
# length) as its simplest value: a case whose sizes shrink or mutate would have its arrays replaced
# by zeros. Chunks of one fixed length keep their values when an array's size changes, as one choice
# per element did: the first elements stay, the rest shift.
CHUNK_BYTES = 32
_CHUNK = st.binary(min_size=CHUNK_BYTES, max_size=CHUNK_BYTES)


def draw_indices(draw: st.DrawFn, shape: tuple[int, ...], options: int) -> np.ndarray:
    """Indices below ``options`` in ``shape``, evenly spread, from bytes choices of ``CHUNK_BYTES``
    each (one byte per element, two where there are more than 256 options). Smaller bytes give
    smaller indices, so shrinking the bytes shrinks every index towards 0."""
    count = int(np.prod(shape, dtype=np.int64))
    if count == 0 or options <= 1:
        return np.zeros(shape, dtype=np.intp)
    width = 1 if options <= 256 else 2
    chunks = b"".join(draw(_CHUNK) for _ in range(-(-count * width // CHUNK_BYTES)))
    raw = np.frombuffer(chunks, dtype=np.uint8 if width == 1 else ">u2")[:count]
    return ((raw.astype(np.int64) * options) >> (8 * width)).astype(np.intp).reshape(shape)


class Choices:
    """A finite list of values, the simplest first, that an array's elements are drawn from by
    ``draw_indices``: classes, lengths, incoming gradients. A value may be listed more than once to
    weigh it."""

    def __init__(self, values: Sequence[Any]) -> None:
        if len(values) == 0:
            raise ValueError("nothing to choose from")
        self.values = np.asarray(values)

    def array(self, draw: st.DrawFn, shape: tuple[int, ...]) -> np.ndarray:
        return self.values[draw_indices(draw, shape, len(self.values))]

    @property
    def distinct(self) -> list[Any]:
        """The values, each once, in their order."""
        return list(dict.fromkeys(self.values.tolist()))

    def __len__(self) -> int:
        return len(self.values)
