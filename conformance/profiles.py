"""Hypothesis profiles: ``dev`` (quick, fresh seed each run), ``ci`` (same examples every run),
``thorough`` (nightly); and what makes generation depend on the seed alone.

Hypothesis (6.131 and later) mixes into its draws literals that it mines from the source of every
"local" module loaded in the process (anything outside site-packages and the standard library:
the user's backend, the current directory's modules) and caches them under ``.hypothesis/``. Under
one ``--seed``, adding a constant to a backend would then change the cases drawn, and a run would
leave files in the user's working directory. ``ignore_local_constants`` turns that source off for
the process; the harness applies it when its generation module (``loss_conformance.strategies``) is
imported and whenever it builds settings for a check, so a pytest session that merely loads the
plugin keeps Hypothesis' behaviour for its own tests.
"""
from __future__ import annotations

import atexit
import os
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hypothesis import HealthCheck, Phase, Verbosity, settings


@dataclass(frozen=True)
class Profile:
    name: str
    max_examples: int
    deterministic: bool
    description: str
    large: bool = False  # runs the large check (inputs of 2^24 elements and more) by default


PROFILES: dict[str, Profile] = {
    "dev": Profile("dev", 30, False, "quick feedback; a fresh seed each run unless --seed is given"),
    "ci": Profile("ci", 30, True, "the same examples every run (seed 0 unless --seed is given)"),
    "thorough": Profile("thorough", 300, False, "nightly depth: ten times the examples, and the large check", True),
}
DEFAULT_PROFILE = "ci"


def ignore_local_constants() -> bool:
    """Make Hypothesis draw no literals mined from local modules, for the whole process.

    Replaces Hypothesis' private source of local constants
    (``hypothesis.internal.conjecture.providers._get_local_constants``) with one that returns an
    empty ``Constants``, and clears the cache of constants already filtered for draws. Idempotent
    and cheap. Returns True when local constants are off (replaced now or before), False when
    this Hypothesis has no such internal: then there is nothing this function knows how to turn
    off, and ``tests/test_profiles.py`` says whether draws still depend on local modules.
    """
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
    except ImportError:
        return False
    current = getattr(providers, "_get_local_constants", None)
    if current is None:
        return False
    if getattr(current, _MARK, False):
        return True
    try:
        empty = Constants()
        empty.set_for_type("float")  # the one method the provider calls on it
    except Exception:  # noqa: BLE001 - a changed internal: leave Hypothesis as it is
        return False

    def no_local_constants() -> "Constants":
        return empty

    setattr(no_local_constants, _MARK, True)
    no_local_constants.original = current  # type: ignore[attr-defined]  # for tests/test_profiles.py
    providers._get_local_constants = no_local_constants
    _clear_constants_cache(providers)
    return True


_MARK = "_loss_conformance_no_local_constants"


def _clear_constants_cache(providers: object) -> None:
    cache = getattr(providers, "CONSTANTS_CACHE", None)
    inner = getattr(cache, "cache", cache)
    clear = getattr(inner, "clear", None)
    if callable(clear):
        clear()


def private_storage_directory() -> Path:
    """Point Hypothesis' storage (``.hypothesis/``: example database, constants and charmap
    caches) at a fresh temporary directory for the rest of the process, and return it.

    For the command line, which must leave nothing in the user's working directory; not for
    pytest sessions, whose example database for the user's own tests lives in ``.hypothesis/``.
    The variable ``HYPOTHESIS_STORAGE_DIRECTORY``, when set, is respected instead.
    """
    from hypothesis.configuration import set_hypothesis_home_dir

    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        return Path(os.environ["HYPOTHESIS_STORAGE_DIRECTORY"])
    path = Path(tempfile.mkdtemp(prefix="loss-conformance-hypothesis-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    set_hypothesis_home_dir(path)
    return path


# Cases one Hypothesis example carries, at most. Hypothesis spends about as long on an example
# (its engine, its choice tree, seeding and restoring the global random generators) as the
# harness spends drawing and checking a cheap case: checking several cases per example spreads
# that over them. Each example's list holds 1 to this many cases, so its shrinker can delete the
# passing ones and leave the failing case alone.
MAX_CASES_PER_EXAMPLE = 8
# Fewer examples than this per check would leave the first, always the simplest case, too large a share.
MIN_EXAMPLES = 4


# Examples a search tries after its first failure while shrinking it, at most; the smallest failing
# case found by then is the counterexample. Hypothesis's shrinker stops on its own only after 500
# successful shrinks: most failures are shrunk in a few dozen examples, but some took 600 to 1100
# (up to 15 s after the failure was found), where the first few dozen had done most of the work.
SHRINK_EXAMPLES = 200


@dataclass(frozen=True)
class SearchBudget:
    """A check's search: ``cases`` cases judged (the runner ends it there), drawn 1 to
    ``cases_per_example`` to a Hypothesis example; after a failure, up to ``shrink_examples``
    examples to shrink it."""

    cases: int
    cases_per_example: int
    shrink_examples: int

    @property
    def examples(self) -> int:
        """Hypothesis's ``max_examples``: enough for one case per example; the search ends before."""
        return self.cases


def search_budget(cases: int, most_per_example: int = MAX_CASES_PER_EXAMPLE) -> SearchBudget:
    """``cases`` cases, up to ``most_per_example`` to an example but in at least ``MIN_EXAMPLES``
    examples on average (one case each under ``2 * MIN_EXAMPLES``)."""
    cases = max(1, cases)
    return SearchBudget(cases, max(1, min(most_per_example, cases // MIN_EXAMPLES)), SHRINK_EXAMPLES)


def hypothesis_settings(max_examples: int, shrink: bool = True) -> settings:
    """Settings for one check: no example database, no deadline, quiet, one minimal failure.

    ``shrink=False`` stops at the first failing example (meta-tests only need the verdict).
    Building them also turns off Hypothesis' local constants (``ignore_local_constants``): the
    cases drawn depend on the seed only."""
    ignore_local_constants()
    return _settings(max_examples, shrink)


def _settings(max_examples: int, shrink: bool = True) -> settings:
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        verbosity=Verbosity.quiet,
        report_multiple_bugs=False,
        print_blob=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink) if shrink else (Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )


def unkeyed(test: Callable[..., Any]) -> Callable[..., Any]:
    """``test`` (a ``@given`` test) with no key in Hypothesis' example database. The harness keeps no
    database, and the key is a digest of the test function's source: Hypothesis would read the
    source of the search's test function, defined anew for every check, on every check."""
    test._hypothesis_internal_database_key = None  # type: ignore[attr-defined]
    return test


def run_seed(profile: Profile, seed: int | None) -> int:
    if seed is not None:
        return seed
    return 0 if profile.deterministic else random.randrange(2**32)


def register_hypothesis_profiles() -> None:
    """Make the three profiles selectable with pytest's ``--hypothesis-profile``."""
    for profile in PROFILES.values():
        base = _settings(profile.max_examples)  # loading the plugin leaves Hypothesis as it is
        settings.register_profile(profile.name, base, derandomize=profile.deterministic)
