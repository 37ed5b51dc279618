"""Hypothesis profiles: ``dev`` (quick, fresh seed each run), ``ci`` (same examples every run),
``thorough`` (nightly)."""
from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import HealthCheck, Phase, Verbosity, settings


@dataclass(frozen=True)
class Profile:
    name: str
    max_examples: int
    deterministic: bool
    description: str


PROFILES: dict[str, Profile] = {
    "dev": Profile("dev", 30, False, "quick feedback; a fresh seed each run unless --seed is given"),
    "ci": Profile("ci", 30, True, "the same examples every run (seed 0 unless --seed is given)"),
    "thorough": Profile("thorough", 300, False, "nightly depth: ten times the examples"),
}
DEFAULT_PROFILE = "ci"


def hypothesis_settings(max_examples: int, shrink: bool = True) -> settings:
    """Settings for one check: no example database, no deadline, quiet, one minimal failure.

    ``shrink=False`` stops at the first failing example (meta-tests only need the verdict)."""
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


def run_seed(profile: Profile, seed: int | None) -> int:
    if seed is not None:
        return seed
    return 0 if profile.deterministic else random.randrange(2**32)


def register_hypothesis_profiles() -> None:
    """Make the three profiles selectable with pytest's ``--hypothesis-profile``."""
    for profile in PROFILES.values():
        base = hypothesis_settings(profile.max_examples)
        settings.register_profile(profile.name, base, derandomize=profile.deterministic)
