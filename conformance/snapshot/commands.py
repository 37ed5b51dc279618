"""``loss-conformance snapshot record PATH`` and ``snapshot compare PATH``: the command line of
snapshots, their tables and their exit status."""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from collections import Counter
from typing import Any, Sequence

import torch

from loss_conformance.backends import DEFAULT, ENV_VAR, BackendError
from loss_conformance.report.atomic import ReportPathError, check_writable
from loss_conformance.report.json_report import environment_versions, write_json
from loss_conformance.report.text import escape_control
from loss_conformance.snapshot.classify import CLASSES, NOT_IMPLEMENTED, CaseVerdict, Change, Classifier
from loss_conformance.snapshot.corpus import DEFAULT_CASES, DEFAULT_DTYPES, CorpusCase, CorpusOptions, corpus
from loss_conformance.snapshot.fileformat import SNAPSHOT_FORMAT, SNAPSHOT_VERSION, SnapshotError, read_snapshot, \
    write_snapshot
from loss_conformance.snapshot.replay import Outcome, replay
from loss_conformance.verdict import EXIT_NONCONFORMING, EXIT_NOTHING_CHECKED, EXIT_OK
from loss_conformance.workers import DEFAULT_TIMEOUT, IsolatedBackend
from loss_conformance_reference.model import LossSpec

COMPARISON_FORMAT = "loss-conformance-snapshot-comparison"
COMPARISON_VERSION = 1

RECORD_EXIT_HELP = ("Exit status: 0 the snapshot was written; 2 usage error (unknown loss, backend that cannot be "
                    "loaded, PATH that cannot be written), nothing written; 3 the backend implements none of the "
                    "selected losses, nothing written.")
COMPARE_EXIT_HELP = ("Exit status: 0 every case is identical (bit for bit: outputs, gradients, Hessian-vector "
                     "products, exceptions); 1 a case moved, is nonconforming or changed its exception, or the "
                     "backend lacks a recorded loss; 2 the snapshot is missing, not a snapshot, damaged, of a newer "
                     "format version or names an unknown loss, or --json cannot be written (nothing written); 3 "
                     "nothing was replayed.")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    snapshot = sub.add_parser("snapshot", help="record a fixed corpus of cases and what a backend answers on them; "
                                               "replay it after an upgrade and see what changed",
                              description="Snapshots answer the question of upgrade day: what changed? 'record' "
                                          "stores, per loss, every worked example of the spec, a case on every kink "
                                          "it declares and seeded generated cases, with their inputs (bit for bit) and the backend's outputs, "
                                          "gradients, Hessian-vector products and exceptions; 'compare' replays the "
                                          "cases and classifies each as identical, moved (within the spec's "
                                          "tolerance, with the ULP distance, or to another gradient of the "
                                          "subdifferential at a declared kink), nonconforming or exception_changed. "
                                          "The file format is described in docs/snapshots.md.")
    actions = snapshot.add_subparsers(dest="snapshot_command", required=True, metavar="ACTION")
    backend_help = (f"'module', 'module:attr', an entry point name, 'torch.nn', 'reference' or '{DEFAULT}' "
                    f"(default: ${ENV_VAR}, else {DEFAULT})")
    record = actions.add_parser("record", help="write a snapshot of a backend", epilog=RECORD_EXIT_HELP,
                                    description="Build the corpus of every selected loss (its worked examples, a case "
                                                "on each declared kink per dtype, then --cases generated cases per "
                                                "variant, reduction and dtype) and record "
                                                "what the backend does on each case, on the CPU.")
    record.add_argument("path", metavar="PATH", help="the snapshot file to write (JSON)")
    record.add_argument("--backend", metavar="SPEC", help=backend_help)
    record.add_argument("--loss", nargs="+", metavar="NAME", help="losses to record (default: all)")
    record.add_argument("--cases", type=int, default=DEFAULT_CASES, metavar="N",
                        help=f"generated cases per loss, variant, reduction and dtype (default: {DEFAULT_CASES})")
    record.add_argument("--dtype", nargs="+", metavar="NAME", default=list(DEFAULT_DTYPES),
                        choices=("float16", "bfloat16", "float32", "float64"),
                        help=f"dtypes of the kink and generated cases (default: {' '.join(DEFAULT_DTYPES)})")
    record.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of the kink and generated cases (default: 0, the same corpus every time)")
    record.add_argument("--quiet", action="store_true", help="no progress lines")
    compare = actions.add_parser("compare", help="replay a snapshot and classify every case", epilog=COMPARE_EXIT_HELP,
                                 description="Replay every case of the snapshot on the backend and classify it: "
                                             "identical (bit for bit), moved (within the spec's tolerance for the "
                                             "case's dtype, the largest ULP distance given; or, at a kink the spec "
                                             "declares, to another valid derivative, named), nonconforming "
                                             "(outside it), exception_changed (raised then and not now, now and "
                                             "not then, or another type or message). Prints a table per loss and "
                                             "lists every case that is not identical.")
    compare.add_argument("path", metavar="PATH", help="a snapshot written by 'snapshot record'")
    compare.add_argument("--backend", metavar="SPEC", help=backend_help)
    compare.add_argument("--loss", nargs="+", metavar="NAME", help="replay only these losses (default: all recorded)")
    compare.add_argument("--json", metavar="OUT", help="write every case's class as JSON here")
    compare.add_argument("--quiet", action="store_true", help="no progress lines")


def _start(backend: str | None, specs: dict[str, LossSpec]) -> IsolatedBackend:
    try:
        return IsolatedBackend(backend or os.environ.get(ENV_VAR) or DEFAULT, specs, timeout=DEFAULT_TIMEOUT)
    except BackendError as exc:
        raise SnapshotError(str(exc)) from None


def _writable(path: str | None, what: str) -> None:
    try:
        check_writable(path, what)
    except ReportPathError as exc:
        raise SnapshotError(str(exc)) from None


def _selected(specs: dict[str, LossSpec], names: Sequence[str] | None, known: Sequence[str]) -> list[str]:
    if not names:
        return list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SnapshotError(f"unknown loss {', '.join(unknown)}; available: {', '.join(known)}")
    return list(dict.fromkeys(names))


def _progress(quiet: bool, text: str) -> None:
    if not quiet:
        print(text, file=sys.stderr, flush=True)


def command_snapshot(args: argparse.Namespace) -> int:
    return {"record": command_record, "compare": command_compare}[args.snapshot_command](args)


def command_record(args: argparse.Namespace) -> int:
    from loss_conformance_reference import shipped_specs

    specs = dict(shipped_specs())
    names = _selected(specs, args.loss, list(specs))
    if args.cases < 0:
        raise SnapshotError("--cases must be 0 or more")
    _writable(args.path, "the snapshot")
    started = time.perf_counter()
    backend = _start(args.backend, specs)
    recorded: dict[str, list[tuple[CorpusCase, Outcome]]] = {}
    missing: list[str] = []
    try:
        for name in names:
            spec = specs[name]
            if not backend.implements(spec):
                missing.append(name)
                continue
            options = CorpusOptions(backend.accepts(spec), args.cases, tuple(args.dtype), args.seed)
            entries = corpus(spec, options)
            _progress(args.quiet, f"snapshot record: {name}: {len(entries)} cases")
            recorded[name] = [(entry, replay(backend, spec, entry)) for entry in entries]
    finally:
        backend.close()
    if not recorded:
        print(f"loss-conformance: {backend.name} implements none of the selected losses; nothing written",
              file=sys.stderr)
        return EXIT_NOTHING_CHECKED
    info = {"backend": backend.name, "device": "cpu", "versions": environment_versions(),
            "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "corpus": {"cases": args.cases, "dtypes": list(args.dtype), "seed": args.seed}}
    write_snapshot(args.path, info, recorded, missing)
    total = sum(len(v) for v in recorded.values())
    raised = sum(1 for v in recorded.values() for _, outcome in v if outcome.raised)
    print(f"snapshot: {total} cases of {len(recorded)} losses recorded on {backend.name} "
          f"(torch {torch.__version__}; {raised} raised) in {time.perf_counter() - started:.1f} s: {args.path}"
          + (f"; not implemented: {', '.join(missing)}" if missing else ""))
    return EXIT_OK


def command_compare(args: argparse.Namespace) -> int:
    from loss_conformance_reference import shipped_specs

    started = time.perf_counter()
    specs = dict(shipped_specs())
    snapshot = read_snapshot(args.path, specs)
    names = _selected(specs, args.loss, list(snapshot.cases))
    _writable(args.json, "the comparison")
    backend = _start(args.backend, specs)
    verdicts: list[CaseVerdict] = []
    try:
        for name in names:
            spec, entries = specs[name], snapshot.cases[name]
            if not backend.implements(spec):
                verdicts.extend(CaseVerdict(name, entry.id, NOT_IMPLEMENTED) for entry, _ in entries)
                continue
            _progress(args.quiet, f"snapshot compare: {name}: {len(entries)} cases")
            classifier = Classifier(spec)
            verdicts.extend(classifier.classify(entry, then, replay(backend, spec, entry)) for entry, then in entries)
    finally:
        backend.close()
    recorded = snapshot.recorded
    replayed = {"backend": backend.name, "device": "cpu", "versions": environment_versions()}
    print(render_comparison(verdicts, args.path, recorded, replayed))
    print(f"replayed in {time.perf_counter() - started:.1f} s")
    if args.json:
        write_json(comparison_json(verdicts, args.path, recorded, replayed), args.json)
    if not verdicts:
        return EXIT_NOTHING_CHECKED
    return EXIT_OK if all(v.kind == "identical" for v in verdicts) else EXIT_NONCONFORMING


def _counts(verdicts: list[CaseVerdict]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter[str]] = {}
    for v in verdicts:
        out.setdefault(v.loss, Counter())[v.kind] += 1
    kinds = CLASSES + ((NOT_IMPLEMENTED,) if any(v.kind == NOT_IMPLEMENTED for v in verdicts) else ())
    return {loss: {k: counts[k] for k in kinds} for loss, counts in out.items()}


def _versions(info: dict[str, Any]) -> str:
    versions = info.get("versions") or {}
    return ", ".join(f"{k} {versions[k]}" for k in ("torch", "numpy", "python") if versions.get(k))


def render_comparison(verdicts: list[CaseVerdict], path: str, recorded: dict[str, Any],
                      replayed: dict[str, Any]) -> str:
    counts = _counts(verdicts)
    kinds = list(next(iter(counts.values())).keys()) if counts else list(CLASSES)
    lines = [f"snapshot {escape_control(path)}: recorded on {escape_control(str(recorded.get('backend')))} "
             f"({escape_control(_versions(recorded))}), replayed on {replayed['backend']} ({_versions(replayed)})", ""]
    table = [("loss", "cases", *kinds)]
    for loss, row in counts.items():
        table.append((loss, str(sum(row.values())), *(str(row[k]) for k in kinds)))
    table.append(("total", str(len(verdicts)), *(str(sum(r[k] for r in counts.values())) for k in kinds)))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for number, row in enumerate(table):
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths))))
        if number in (0, len(table) - 2):
            lines.append("-" * (sum(widths) + 2 * (len(widths) - 1)))
    changed = [v for v in verdicts if v.kind != "identical"]
    if changed:
        lines += ["", "cases not identical:"]
        for v in changed:
            # An exception's text then and now; a gradient moved at a kink, the kink and the derivatives.
            parts = "; ".join(f"{c.what} {c.kind}" + _distance(c) + (f": {c.detail}" if c.kind == "exception_changed"
                                                                     or c.kinks else "")
                              for c in v.changes) or "the backend has no such function"
            lines.append(f"  {v.loss}  [{escape_control(v.id)}]  {v.kind}: {escape_control(parts)}")
    lines += ["", f"{len(verdicts)} cases: " + ", ".join(
        f"{sum(r[k] for r in counts.values())} {k}" for k in kinds if any(r[k] for r in counts.values()))]
    return "\n".join(lines)


def _distance(change: Change) -> str:
    if change.ulp is None:
        return ""
    ulp = f"{change.ulp}" if change.ulp < 10**6 else f"{change.ulp:.3g}"
    return f" ({ulp} ULP, |difference| {change.difference:.3g})" if change.difference is not None else f" ({ulp} ULP)"


def comparison_json(verdicts: list[CaseVerdict], path: str, recorded: dict[str, Any],
                    replayed: dict[str, Any]) -> dict[str, Any]:
    return {
        "format": COMPARISON_FORMAT, "version": COMPARISON_VERSION,
        "snapshot": {"path": path, "format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION},
        "recorded": recorded, "replayed": replayed,
        "identical": all(v.kind == "identical" for v in verdicts),
        "summary": _counts(verdicts),
        "cases": [{"loss": v.loss, "id": v.id, "class": v.kind,
                   "changes": [{"what": c.what, "class": c.kind, "ulp": c.ulp, "difference": c.difference,
                                "detail": c.detail,
                                **({"kinks": [{"kink": k, "then": a, "now": b} for k, a, b in c.kinks]}
                                   if c.kinks else {})}
                               for c in v.changes]} for v in verdicts],
    }
