"""Shared helpers for the project's tests."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

import pytest

from loss_conformance.backends import DEFAULT, Backend
from loss_conformance.cli import main
from loss_conformance.records import FAILING, Record
from loss_conformance.planning import DEFAULT_CHECKS, plan
from loss_conformance.runner import Runner
from loss_conformance_reference import shipped_specs
from loss_conformance_reference.model import LossSpec


def inheriting_torch_deviations(name: str) -> dict[str, LossSpec]:
    """The shipped specs, with torch's known deviations extended to backend ``name``: a broken
    backend is torch with one loss replaced, so it inherits torch's deviations on the others."""
    out = {}
    for loss, spec in shipped_specs().items():
        devs = tuple(dataclasses.replace(d, backends=d.backends + (name,)) if DEFAULT in d.backends else d
                     for d in spec.deviations)
        out[loss] = dataclasses.replace(spec, deviations=devs)
    return out


def run_suite(backend: Backend, losses: Iterable[str] | None = None, seed: int = 0, max_examples: int = 20,
              shrink: bool = False, checks: Iterable[str] = DEFAULT_CHECKS,
              dtypes: Iterable[str] = ("float32", "float64"), stop_at_first_failure: bool = False) -> list[Record]:
    """Run the suite on ``backend`` (the shipped specs, torch's deviations inherited).

    ``stop_at_first_failure`` ends the run at the first failing record: a meta-test only needs
    the verdict, and a broken backend's remaining checks would only cost time."""
    specs = inheriting_torch_deviations(backend.name)
    selected = [specs[n] for n in losses] if losses is not None else list(specs.values())
    planned = plan(selected, list(dtypes), ["cpu"], checks)
    with Runner(specs, backend, max_examples, seed, shrink=shrink) as runner:  # closes its worker process
        if not stop_at_first_failure:
            return runner.run(planned)
        records = []
        for cid in planned:
            records.append(runner.run_one(cid))
            if records[-1].status in FAILING:
                break
        return records


def assert_refused_option(option: str, value: str, parse: Callable[[str], Any], capsys: Any) -> None:
    """``parse`` refuses ``value`` (ValueError), and ``run OPTION value`` is a usage error (exit status
    2) whose message names the option."""
    with pytest.raises(ValueError):
        parse(value)
    with pytest.raises(SystemExit) as exited:
        main(["run", option, value, "--loss", "l1_loss"])
    assert exited.value.code == 2 and option in capsys.readouterr().err


def few_examples(pytester: Any, examples: int = 5) -> list[str]:
    """Arguments for a ``pytester`` run of the conformance suite that draws ``examples`` examples per item:
    a Hypothesis profile of the user's own (the plugin takes its ``max_examples``, and the ``ci``
    profile's fixed seed for a name it does not know), registered by a plugin module the run loads.
    For tests of what the plugin does with items (collects, passes, fails, survives), not of what
    thirty examples find."""
    pytester.makepyfile(few_examples_profile=f"from hypothesis import settings\n"
                                             f"settings.register_profile('few', max_examples={examples})\n")
    return ["-p", "few_examples_profile", "--hypothesis-profile", "few"]
