"""The catalogue: every loss one run knows, built once from the shipped specs and the user's own.

A user's spec (``--spec FILE``, ``--spec-dir DIR``) stands beside the shipped ones under the same
schema; one with the id of a shipped loss replaces it, and the catalogue says so (``notices``).
The CLI, the runner, the pytest plugin and the reproduction snippets all take this one object
rather than reading the shipped specs themselves, so a user's loss is checked like a shipped one.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from loss_conformance_reference.errors import SpecError
from loss_conformance_reference.loader import load_spec, spec_paths
from loss_conformance_reference.model import Deviation, LossSpec
from loss_conformance_spec import LOSSES_DIR


# The backend whose recorded deviations --inherit-torch-deviations grants to the backend under test.
TORCH_FUNCTIONAL = "torch.nn.functional"


class CatalogueError(ValueError):
    """A ``--spec`` file or ``--spec-dir`` directory that does not exist, or a directory without specs."""


@dataclass(frozen=True)
class Replacement:
    """A user's spec that took the place of a shipped one."""

    loss: str
    user: Path
    shipped: Path


def is_shipped(spec: LossSpec) -> bool:
    """Whether ``spec`` is one of the files that ship with the package."""
    return spec.path.resolve().parent == LOSSES_DIR.resolve()


class Catalogue(Mapping[str, LossSpec]):
    """Loss id -> spec, shipped specs first (in their order), then the user's new losses."""

    def __init__(self, specs: Mapping[str, LossSpec], user: Iterable[str] = (),
                 replaced: Iterable[Replacement] = ()) -> None:
        self._specs = dict(specs)
        self.user = frozenset(user)
        self.replaced = tuple(replaced)

    @classmethod
    def build(cls, files: Iterable[str | Path] = (), dirs: Iterable[str | Path] = ()) -> "Catalogue":
        """The shipped specs plus each spec file in ``files`` and each ``*.yaml`` in ``dirs``.

        A file that fails the schema or the loader is a ``SpecError`` naming it and its line; two
        user files with one id are a ``SpecError`` too (which one is meant cannot be guessed)."""
        from loss_conformance_reference import shipped_specs

        shipped = shipped_specs()
        specs = dict(shipped)
        user: dict[str, LossSpec] = {}
        replaced = []
        for path in user_spec_paths(files, dirs):
            spec = load_spec(path)
            if spec.id in user:
                raise SpecError(str(path), 1, "id", f"loss '{spec.id}' is also specified in {user[spec.id].path}")
            user[spec.id] = spec
            if spec.id in shipped:
                replaced.append(Replacement(spec.id, path, shipped[spec.id].path))
            specs[spec.id] = spec
        return cls(specs, user, replaced)

    def notices(self) -> list[str]:
        """One line per shipped spec that a user's spec replaced."""
        return [f"{r.user} replaces the shipped spec of '{r.loss}' ({r.shipped})" for r in self.replaced]

    def with_deviations(self, extra: Mapping[str, tuple[Deviation, ...]]) -> "Catalogue":
        """A copy where each loss of ``extra`` also carries those deviations (``--known-deviations``)."""
        specs = {loss: dataclasses.replace(spec, deviations=spec.deviations + extra[loss]) if loss in extra else spec
                 for loss, spec in self._specs.items()}
        return Catalogue(specs, self.user, self.replaced)

    def inheriting_torch_deviations(self, backend: str) -> "Catalogue":
        """A copy where ``backend`` also has every known deviation declared for torch.nn.functional
        (``--inherit-torch-deviations``: torch code compiled or ported behaves as torch does)."""
        return self.with_deviations({
            loss: tuple(dataclasses.replace(d, backends=(backend,), inherited=True) for d in spec.deviations
                        if TORCH_FUNCTIONAL in d.backends and backend not in d.backends)
            for loss, spec in self._specs.items()})

    def __getitem__(self, loss: str) -> LossSpec:
        return self._specs[loss]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)


def user_spec_paths(files: Iterable[str | Path], dirs: Iterable[str | Path]) -> list[Path]:
    """The user's spec files, each once, in the order given (a directory's files by name)."""
    paths: list[Path] = []
    for file in map(Path, files):
        if not file.is_file():
            raise CatalogueError(f"{file}: cannot read: no such spec file")
        paths.append(file)
    for directory in map(Path, dirs):
        if not directory.is_dir():
            raise CatalogueError(f"{directory}: no such spec directory")
        found = spec_paths(directory)
        if not found:
            raise CatalogueError(f"{directory}: no spec files (*.yaml) in this directory")
        paths.extend(found)
    seen: set[Path] = set()
    unique = []
    for path in paths:
        if path.resolve() not in seen:
            seen.add(path.resolve())
            unique.append(path)
    return unique
