"""The snapshot file: JSON with a format name, a version and a digest of its contents, holding per
loss the corpus cases (inputs stored exactly) and what the recording backend did on each. Reading
checks everything before a single case is replayed: a file that is not a snapshot, of a newer
version, damaged or edited, or about a loss no spec defines is one ``SnapshotFileError``."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from loss_conformance.case import Case
from loss_conformance.execution import Output
from loss_conformance.layouts import MemoryLayout
from loss_conformance.report.atomic import atomic_write
from loss_conformance.snapshot.arrays import ArrayFormatError, decode_array, decode_value, encode_array, encode_value
from loss_conformance.snapshot.corpus import CorpusCase
from loss_conformance.snapshot.replay import Outcome
from loss_conformance_reference.model import LossSpec

SNAPSHOT_FORMAT = "loss-conformance-snapshot"
SNAPSHOT_VERSION = 1


class SnapshotError(ValueError):
    """A snapshot command that cannot go on (a usage error: exit status 2, nothing replayed or written)."""


class SnapshotFileError(SnapshotError):
    """A snapshot file that cannot be used: missing, not a snapshot, damaged, of a newer version."""


@dataclass
class Snapshot:
    recorded: dict[str, Any]  # backend, device, versions, corpus options, time
    cases: dict[str, list[tuple[CorpusCase, Outcome]]]  # per loss, in recording order
    not_implemented: list[str]


# --- writing ------------------------------------------------------------------------------------

def _output(output: Output | None) -> dict[str, Any] | None:
    if output is None:
        return None
    if output.values is None:
        return {"type": output.type_name}
    return {"type": output.type_name, "dtype": output.dtype, "device": output.device,
            "shape": list(output.shape or ()), "requires_grad": output.requires_grad,
            "values": encode_array(np.asarray(output.values, dtype=np.float64))}


def _outputs(outputs: Mapping[str, Output | None] | None) -> dict[str, Any] | None:
    return None if outputs is None else {name: _output(o) for name, o in outputs.items()}


def _case(entry: CorpusCase, outcome: Outcome) -> dict[str, Any]:
    case = entry.case
    tangents = case.transform.get("tangents") or {}
    return {
        "id": entry.id, "source": entry.source, "variant": case.variant, "layout": case.layout, "dtype": case.dtype,
        "reduction": entry.reduction, "params": encode_value(dict(case.params)),
        "inputs": {name: encode_array(v) if v is not None else None for name, v in case.inputs.items()},
        "layouts": {name: layout.describe() for name, layout in case.layouts.items()},
        "cotangent": encode_array(case.cotangent) if case.cotangent is not None else None,
        "tangents": {name: encode_array(v) for name, v in tangents.items()},
        "result": {"raised": outcome.raised, "output": _output(outcome.output), "grads": _outputs(outcome.grads),
                   "grad_raised": outcome.grad_raised, "hvp": _outputs(outcome.hvp), "hvp_raised": outcome.hvp_raised},
    }


def digest(losses: Any) -> str:
    return hashlib.sha256(json.dumps(losses, sort_keys=True, separators=(",", ":"), allow_nan=False,
                                     ensure_ascii=True).encode("ascii")).hexdigest()


def write_snapshot(path: str | os.PathLike[str], recorded: dict[str, Any],
                   cases: Mapping[str, list[tuple[CorpusCase, Outcome]]], not_implemented: list[str]) -> None:
    losses = {loss: [_case(entry, outcome) for entry, outcome in entries] for loss, entries in cases.items()}
    document = {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION, "recorded": recorded,
                "not_implemented": list(not_implemented), "losses": losses, "digest": digest(losses)}
    atomic_write(path, (json.dumps(document, indent=1, allow_nan=False, ensure_ascii=True) + "\n").encode("ascii"))


# --- reading ------------------------------------------------------------------------------------

def _read_output(stored: Any) -> Output | None:
    if stored is None:
        return None
    if "values" not in stored:
        return Output(str(stored["type"]))
    values = decode_array(stored["values"])
    if list(values.shape) != stored["shape"]:
        raise ArrayFormatError(f"values of shape {values.shape} for an output of shape {stored['shape']}")
    return Output(str(stored["type"]), stored["dtype"], stored["device"], tuple(stored["shape"]), values,
                  bool(stored["requires_grad"]))


def _read_outputs(stored: Any) -> dict[str, Output | None] | None:
    return None if stored is None else {str(name): _read_output(o) for name, o in stored.items()}


def _read_case(spec: LossSpec, stored: dict[str, Any]) -> tuple[CorpusCase, Outcome]:
    variant = spec.variant(stored["variant"])  # KeyError: a variant the spec no longer has
    inputs = {name: decode_array(v) if v is not None else None for name, v in stored["inputs"].items()}
    unknown = set(inputs) - set(variant.inputs)
    if unknown:
        raise KeyError(f"input(s) {', '.join(sorted(unknown))} that variant '{variant.name}' does not have")
    layouts = {name: MemoryLayout(**{k: tuple(v) if isinstance(v, list) else v for k, v in layout.items()})
               for name, layout in stored["layouts"].items()}
    params = decode_value(stored["params"])
    case = Case(spec.id, variant.name, stored["layout"], stored["dtype"], inputs, params, layouts=layouts)
    if stored["cotangent"] is not None:
        case.cotangent = decode_array(stored["cotangent"])
    if stored["tangents"]:
        case.transform["tangents"] = {name: decode_array(v) for name, v in stored["tangents"].items()}
    result = stored["result"]
    outcome = Outcome(result["raised"], _read_output(result["output"]), _read_outputs(result["grads"]),
                      result["grad_raised"], _read_outputs(result["hvp"]), result["hvp_raised"])
    return CorpusCase(str(stored["id"]), str(stored["source"]), str(stored["reduction"]), case), outcome


def read_snapshot(path: str | os.PathLike[str], specs: Mapping[str, LossSpec]) -> Snapshot:
    """The snapshot at ``path``, every case decoded; ``SnapshotFileError`` saying what is wrong otherwise."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as exc:
        raise SnapshotFileError(f"cannot read snapshot {path}: {exc.strerror or exc}") from None
    try:
        document = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotFileError(f"{path} is not a snapshot: not JSON ({exc}); it may be truncated") from None
    if not isinstance(document, dict) or document.get("format") != SNAPSHOT_FORMAT:
        raise SnapshotFileError(f"{path} is not a loss-conformance snapshot (no \"format\": \"{SNAPSHOT_FORMAT}\"); "
                                "write one with: loss-conformance snapshot record PATH")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SnapshotFileError(f"{path}: bad snapshot format version {version!r}")
    if version > SNAPSHOT_VERSION:
        raise SnapshotFileError(f"{path} is a snapshot of format version {version}, newer than this "
                                f"loss-conformance reads (version {SNAPSHOT_VERSION}): upgrade loss-conformance, "
                                "or record the snapshot again with this one")
    losses = document.get("losses")
    if not isinstance(losses, dict) or document.get("digest") != digest(losses):
        raise SnapshotFileError(f"{path} is damaged or was edited: its contents do not match its digest; "
                                "record it again")
    unknown = [loss for loss in losses if loss not in specs]
    if unknown:
        raise SnapshotFileError(f"{path} holds loss(es) that no spec defines: {', '.join(map(str, unknown))}")
    cases: dict[str, list[tuple[CorpusCase, Outcome]]] = {}
    for loss, stored_cases in losses.items():
        cases[loss] = []
        for number, stored in enumerate(stored_cases):
            try:
                cases[loss].append(_read_case(specs[loss], stored))
            except (ArrayFormatError, KeyError, TypeError, ValueError, AttributeError) as exc:
                raise SnapshotFileError(f"{path}: case {number} of {loss} cannot be read: "
                                        f"{type(exc).__name__}: {exc}") from None
    recorded = document.get("recorded") if isinstance(document.get("recorded"), dict) else {}
    not_implemented = [str(n) for n in document.get("not_implemented") or []]
    return Snapshot(recorded, cases, not_implemented)
