"""Run checks: one Hypothesis search per loss x check x reduction x dtype x device."""
from __future__ import annotations

import tempfile
import time
import traceback
import zlib
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from hypothesis import given, reject, seed as hseed
from hypothesis import strategies as st
from hypothesis.control import current_build_context
from hypothesis.errors import Flaky, Unsatisfiable

from loss_conformance.backends import Backend
from loss_conformance.capabilities import Capabilities
from loss_conformance.case import Case
from loss_conformance.checks import (CHECKS, CheckContext, CheckFailure, DeclaredTolerance, NoKernel, NondeterminismFound,
                                NotApplicable, Rejected)
from loss_conformance.example_check import examples_record
from loss_conformance.causes import Cause, cause_of, failure_kind_of, known
from loss_conformance.deviations import applicable, declared_tolerance, explaining, matching, reads_bindings
from loss_conformance.oracle import Oracle
from loss_conformance.oracle_check import OracleDisagrees
from loss_conformance.planning import ALL, GRADIENT_CHECKS, large_examples
from loss_conformance.profiles import hypothesis_settings, search_budget, unkeyed
from loss_conformance.records import CheckId, Record
from loss_conformance.reproduce import save_arrays, snippet
from loss_conformance.search_outcome import SearchState, settled
from loss_conformance.standalone import failure_snippet
from loss_conformance.strategies import case_strategy
from loss_conformance.timing import Timings
from loss_conformance.workers import DEFAULT_TIMEOUT, IsolatedBackend, WorkerLost
from loss_conformance_reference.errors import SpecError
from loss_conformance_reference.model import LossSpec


class BudgetSpent(BaseException):
    """A search judged the cases it was given (``SearchBudget.cases``) and found no failure: it ends
    there. A BaseException, so that Hypothesis stops at once instead of drawing more."""


class StoppedAtFailure(BaseException):
    """A search ends at its failure (``error``) without Hypothesis shrinking it further or replaying
    it: a large check's at its first (a large case costs seconds a call and is not shrunk), any other
    once its shrinking has spent ``SearchBudget.shrink_examples``. The calls a failure rests on were
    already repeated (``CheckContext.confirm``): a replay would only draw the same case and make the
    same calls again. A BaseException, so that Hypothesis stops at once."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class Runner:
    """Runs checks of one backend. The backend is called in worker processes: pass a ``Backend``
    object (forked workers inherit it), a backend name, or an ``IsolatedBackend`` already started."""

    def __init__(self, specs: Mapping[str, LossSpec], backend: Backend | str | None, max_examples: int, seed: int,
                 timings: Timings | None = None,
                 progress: Callable[[int, int, CheckId], None] | None = None, shrink: bool = True,
                 timeout: float = DEFAULT_TIMEOUT, cases_dir: Path | None = None,
                 capabilities: Capabilities | None = None, counterexamples: int = 1) -> None:
        # The searches and checks see each spec as far as the backend declares it supports it.
        self.specs = capabilities.narrow(specs) if capabilities else specs
        self.capabilities, self._declared_over = capabilities, specs
        self.backend = backend if isinstance(backend, IsolatedBackend) else IsolatedBackend(backend, specs,
                                                                                           timeout=timeout)
        self.max_examples = max_examples
        self.counterexamples = counterexamples  # distinct causes sought per failing check
        self.seed = seed
        self.timings = timings or Timings()
        self.progress = progress
        self.shrink = shrink
        self._oracles: dict[tuple[str, str], Oracle] = {}
        self._cases_dir = cases_dir

    def cases_dir(self) -> Path:
        """Where the values of counterexamples too large for the report go: the directory given, or
        a new one under the system's temporary directory, kept for the reproduction snippets."""
        if self._cases_dir is None:
            self._cases_dir = Path(tempfile.mkdtemp(prefix="loss-conformance-cases-"))
        return self._cases_dir

    def run(self, checks: list[CheckId], on_record: Callable[[Record], None] | None = None) -> list[Record]:
        records = []
        for i, cid in enumerate(checks):
            if self.progress:
                self.progress(i, len(checks), cid)
            records.append(self.run_one(cid))
            if on_record:
                on_record(records[-1])
        return records

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_seed(self, cid: CheckId) -> int:
        """A per-check seed derived from the run seed, stable across runs and platforms."""
        return zlib.crc32(f"{self.seed}:{cid.label()}".encode()) & 0xFFFFFFFF

    def run_one(self, cid: CheckId) -> Record:
        spec = self.specs[cid.loss]
        started = time.perf_counter()
        record = self._run(spec, cid)
        record.seconds = round(time.perf_counter() - started, 4)
        record.finished_at_s = round(time.perf_counter() - self.timings.started, 4)
        return record

    def _context(self, spec: LossSpec, cid: CheckId) -> CheckContext:
        key = (spec.id, cid.device)
        if key not in self._oracles:
            self._oracles[key] = Oracle(spec, cid.device, self.timings)
        return CheckContext(spec, self.backend, self._oracles[key], cid.dtype, cid.device, cid.reduction,
                            self.timings, self.accepts(spec),
                            declared_tolerance(applicable(spec, self.backend.name, cid.check, cid.dtype)))

    def unsupported(self, cid: CheckId) -> str | None:
        """Why ``cid`` lies outside the backend's declared support (None when inside, or undeclared)."""
        if self.capabilities is None or not self.backend.implements(self.specs[cid.loss]):
            return None
        (_, records) = self.capabilities.split([cid], self._declared_over, self.backend.name)
        return records[0].message if records else None

    def accepts(self, spec: LossSpec) -> frozenset[str]:
        """What the backend can be given for ``spec``: its signature's names, less the options it
        declares it does not support."""
        support = self.capabilities.support(spec.id) if self.capabilities else None
        return self.backend.accepts(spec) - (support.never_passed() if support else frozenset())

    def _run(self, spec: LossSpec, cid: CheckId) -> Record:
        name = self.backend.name
        if not self.backend.implements(spec):
            return Record.for_check(cid, name, "not_implemented", message=f"{name} has no {spec.id}")
        if cid.dtype != ALL and cid.dtype not in spec.tolerance:
            return Record.for_check(cid, name, "skipped", message=f"the spec gives no {cid.dtype} tolerance")
        if (why := self.backend.cannot_run(cid.check)) is not None:
            return Record.for_check(cid, name, "skipped", message=why)
        ctx = self._context(spec, cid)
        record = self._checked(ctx, cid)
        if ctx.notices:  # the record was made, at least in part, on eager kernels: it says so
            said = [f"torch.compile fell back to eager ({notice})" for notice in ctx.notices]
            record.message = "; ".join([*([record.message] if record.message else []), *said])
            record.detail = {**(record.detail or {}), "compile_fallbacks": list(ctx.notices)}
        return record

    def _checked(self, ctx: CheckContext, cid: CheckId) -> Record:
        name = self.backend.name
        try:
            if cid.check == "examples":
                return examples_record(ctx, cid)
            return self._search(ctx, cid)
        except SpecError:
            raise  # a spec or deviation file that fails at run time is a configuration error
        except WorkerLost as lost:
            return Record.for_check(cid, name, lost.status, message=lost.message)
        except Exception:  # noqa: BLE001 - a harness error must not hide the other checks
            return Record.for_check(cid, name, "error", message=traceback.format_exc(limit=6))

    def _search(self, ctx: CheckContext, cid: CheckId) -> Record:
        spec, name = ctx.spec, self.backend.name
        reduction = cid.reduction if cid.reduction != ALL else _default_reduction(spec)
        large = cid.check == "large"
        strategy = case_strategy(spec, cid.dtype, reduction, ctx.accepted(), interior=cid.check == "gradcheck",
                                 large=large, bucketed=self.backend.compiles_per_shape)
        check = CHECKS[cid.check]
        deviations = applicable(spec, name, cid.check, cid.dtype)
        state = SearchState()
        check_seed = self.check_seed(cid)

        bound = reads_bindings(deviations, spec.variants)

        def scope(case: Case) -> Callable[[], dict[str, Any]]:
            return lambda: {**ctx.oracle.env(case, bindings=bound),
                            **case.input_scope(ctx.spec.variant(case.variant).inputs),
                            "dtype": cid.dtype, "device": cid.device}

        def test(case: Case, data: st.DataObject) -> None:
            state.examples += 1
            state.current = case
            try:
                with np.errstate(all="ignore"):  # inf and NaN are values under test, not warnings
                    check(ctx, case, data)
            except NoKernel as missing:
                state.no_kernel += 1
                state.kernel = missing
                return
            except NotApplicable as exc:
                state.not_applicable += 1
                state.why_not = str(exc)
                return
            except (CheckFailure, NondeterminismFound, WorkerLost) as exc:
                # A known deviation can be nondeterministic (uninitialised memory on an empty batch)
                # or crash the process (a kernel reading past a non-contiguous input) too.
                failed = getattr(exc, "case", None) or case  # a vmapped batch's failing sample
                # Matched against every case whose inputs the failing calls were made on: a property
                # that substitutes inputs fails on calls with the substituted ones too.
                pool = explaining(deviations, isinstance(exc, DeclaredTolerance), failure_kind_of(exc))
                found = next((dev for called in getattr(exc, "called_on", ()) or (failed,)
                              if (dev := matching(pool, scope(called))) is not None), None)
                if found is not None:
                    state.observed += 1
                    state.deviation = found
                    return
                if not isinstance(exc, CheckFailure):
                    raise
                if state.known and known(cause_of(str(exc), failed.params, spec), state.known):
                    return  # a cause already reported: this search looks for another
                # The smallest failure so far: not every failing example is smaller (the shrinker also
                # tries some with random choices filled in, and keeps them only if they are).
                key = _choices_key()
                if state.failure is None or _replaying() or key is None or state.failure_key is None \
                        or key < state.failure_key:
                    state.failure, state.failure_key = (failed, str(exc)), key
                if large or shrinking_spent():  # large: not shrunk; else the shrinking's budget is spent
                    raise StoppedAtFailure(CheckFailure(state.failure[1])) from None
                raise
            held = matching(deviations, scope(case)) if deviations else None
            if held is not None and held.unstable:
                state.held_unstable = held  # right by chance this time: not news
            elif held is not None and not held.inherited:  # torch's, granted: passing is no news either
                state.matched_but_passed += 1
                state.held = held

        def failing(status: str, case: Case, message: str, **extra: Any) -> Record:
            saved = save_arrays(case, self.cases_dir(), f"{cid.label()}-{check_seed}") if case.is_large() else None
            wrt = ctx.wrt(case) if cid.check in GRADIENT_CHECKS + ("large",) else ()
            return Record.for_check(cid, name, status, examples=state.examples, message=message, seed=check_seed,
                                    counterexample=case.counterexample(saved),
                                    reproduce=snippet(case, name, cid.device, cid.check, wrt, saved, spec=spec),
                                    standalone=failure_snippet(ctx, case, wrt), **extra)

        # A large case is not shrunk: each step costs seconds, and its counterexample is kept whole.
        budget = search_budget(large_examples(self.max_examples), 1) if large else search_budget(self.max_examples)
        settings_ = hypothesis_settings(budget.examples, self.shrink and not large)
        cases = st.lists(strategy, min_size=1, max_size=budget.cases_per_example)

        def shrinking_spent() -> bool:
            return state.shrink_examples >= budget.shrink_examples and not _replaying()

        def test_cases(cases: list[Case], data: st.DataObject) -> None:
            # One example's cases, one after another; a failure ends the example, and Hypothesis
            # shrinks the list with the failing case (deleting, where it can, the cases that passed).
            # Shrinking: each example tried is smaller than the failure (not Hypothesis's replay of the
            # failure it shrank to, its ``is_final`` example). Past the budget, the search stops at the
            # end of an example, once its cases drew all they draw: stopped earlier, an example would
            # draw less than one Hypothesis ran before with the same first choices, which it takes for
            # a flaky strategy.
            if state.failure is not None and not _replaying():
                state.shrink_examples += 1
            judged = 0
            for case in cases:
                try:
                    test(case, data)
                except Rejected:
                    state.passed_over += 1
                    continue
                except BaseException:
                    state.raised_on = case
                    raise
                judged += 1
                state.judged += 1
                if state.judged >= budget.cases and state.failure is None:
                    raise BudgetSpent()  # not while shrinking a failure
            if shrinking_spent():
                raise StoppedAtFailure(CheckFailure(state.failure[1]))  # type: ignore[index]  # the smallest so far
            if not judged:
                reject()  # Hypothesis draws another example; none at all: Unsatisfiable

        def search(seed: int) -> Callable[[], None]:
            state.judged = state.shrink_examples = 0
            hypothesis_search = unkeyed(settings_(hseed(seed)(given(cases=cases, data=st.data())(test_cases))))

            def run() -> None:
                try:
                    hypothesis_search()
                except StoppedAtFailure as stopped:
                    raise stopped.error from None
            return run

        try:
            search(check_seed)()
        except BudgetSpent:
            pass
        except CheckFailure:
            case, message = state.failure  # type: ignore[misc]
            record = failing("fail", case, message)
            if large:  # a large case costs seconds: its check stops at the first cause
                return record
            others = self._other_causes(state, spec, cause_of(message, case.params, spec), check_seed, search)
            if others:
                record.detail = {**(record.detail or {}), "other_causes": [
                    {"cause": str(cause), "message": text, "counterexample": other.counterexample(None)}
                    for cause, other, text in others]}
            return record
        except WorkerLost as lost:
            assert state.current is not None
            return failing(lost.status, state.current, lost.message)
        except OracleDisagrees as disagreement:
            return failing("error", disagreement.case, str(disagreement))
        except NondeterminismFound as found:
            assert state.current is not None
            return failing("nondeterministic", state.current, found.message, detail=found.detail())
        except Flaky:
            # The failure did not come back when Hypothesis replayed the same input.
            raised_on = state.raised_on or state.current
            case, message = state.failure if state.failure else (raised_on, "")  # type: ignore[assignment]
            return failing("nondeterministic", case, "the backend failed on this input once and passed on it "
                                                     f"when called again: {message}")
        except Unsatisfiable:
            return Record.for_check(cid, name, "skipped", examples=state.examples, seed=check_seed,
                                    message="no example satisfied the spec's smooth_when")
        return settled(ctx, cid, name, state, check_seed, large)

    def _other_causes(self, state: SearchState, spec: LossSpec, first: Cause, check_seed: int,
                      search: Callable[[int], Callable[[], None]]) -> list[tuple[Cause, Case, str]]:
        """Failures of other causes than ``first`` (``loss_conformance.causes``), from further searches
        of the check (seeds after ``check_seed``) that pass over the causes found, up to
        ``counterexamples`` in all; the first search that finds no new one ends it."""
        found: list[tuple[Cause, Case, str]] = []
        state.known = [first]
        while len(state.known) < self.counterexamples:
            state.failure = state.failure_key = None
            try:
                search(check_seed + len(state.known))()
            except CheckFailure:
                case, message = state.failure  # type: ignore[misc]
                found.append((cause_of(message, case.params, spec), case, message))
                state.known.append(found[-1][0])
                continue
            except (Exception, BudgetSpent):  # noqa: BLE001 - a crash, a flaky answer, no new cause: the causes found stand
                break
            break
        return found


def _choices_key() -> Any:
    """How simple the current example's choices are, in the order Hypothesis's shrinker keeps
    (``sort_key``: fewer choices, then smaller ones); None where this Hypothesis has no such key."""
    try:
        from hypothesis.internal.conjecture.shrinker import sort_key

        return sort_key(current_build_context().data.nodes)
    except (ImportError, AttributeError, TypeError):
        return None


def _replaying() -> bool:
    """Whether Hypothesis is replaying the failure it shrank to (to report it), not searching."""
    return bool(getattr(current_build_context(), "is_final", False))


def _default_reduction(spec: LossSpec) -> str:
    """The reduction of a check that is not per reduction: the default, unless the backend declares
    it does not support it (the spec is narrowed to what it does)."""
    if "reduction" not in spec.params:
        return "none"
    default = spec.params["reduction"].default
    return default if default in spec.reductions else spec.reductions[0]
