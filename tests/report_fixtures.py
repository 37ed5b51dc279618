"""Records and report data shared by the report tests."""
from __future__ import annotations

import json

from loss_conformance.records import FAILING, STATUSES, Record

TIMINGS = {"total_s": 2.0, "backend_s": 0.5, "reference_s": 0.5, "harness_s": 1.0}
RUN = {"backend": "tests.sample_backends:x", "seed": 7}
# Everything a terminal or an XML parser should never receive raw, as a backend could raise it.
NASTY = ("boom\x1b[2J\x1b[31mred\r\x00\x07\x08\x0b\x0c\x1b]0;title\x07\x7f\x85\x9b\u2028\u202e\ud800\ufffe\uffff"
         "tab\there")


def record(status: str = "pass", **extra) -> Record:
    fields = {"loss": "l1_loss", "check": "forward", "reduction": "mean", "dtype": "float32", "device": "cpu",
              "backend": "my_kernels", "status": status}
    fields.update(extra)
    return Record(**fields)


def failing(status: str = "fail", **extra) -> Record:
    values = [[0.5, -1.25, float("nan")], [float("inf"), 2.0, -0.0]]
    base = dict(examples=3, seconds=0.25, seed=3550092040,
                message=f"{status}: output values differ; actual=2 expected=1",
                counterexample={"variant": "default", "layout": "batched",
                                "inputs": {"input": {"shape": [2, 3], "dtype": "float32", "values": values}},
                                "params": {"reduction": "mean"}},
                reproduce=f"import torch\ninput = torch.tensor({values!r})\nprint('actual:', 2)\n")
    base.update(extra)
    return record(status, **base)


def one_of_each() -> list[Record]:
    out = []
    for status in STATUSES:
        if status in FAILING:
            out.append(failing(status, check=f"check_{status}"))
        else:
            out.append(record(status, check=f"check_{status}", message="" if status == "pass" else f"why {status}"))
    return out


def read(path) -> dict:
    def no_constants(name):
        raise ValueError(f"non-strict JSON constant {name}")
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constants)

