"""pytest plugin (entry point ``pytest11``): the conformance checks as pytest items.

    pytest --pyargs loss_conformance.pytest_suite --backend mypkg.losses --hypothesis-profile ci

Items are named ``loss-check-reduction-dtype-device``; a known deviation is an xfail. Specs of your
own go beside the shipped ones with ``--conformance-spec FILE`` / ``--conformance-spec-dir DIR`` or
the ini settings ``conformance_specs`` / ``conformance_spec_dirs``.
"""
from __future__ import annotations

from typing import Any

import pytest

from loss_conformance.profiles import PROFILES, register_hypothesis_profiles

register_hypothesis_profiles()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("loss-conformance")
    group.addoption("--backend", default=None, metavar="SPEC",
                    help="backend to check: module, module:attr, torch.nn, reference "
                         "(default: $LOSS_CONFORMANCE_BACKEND, else torch.nn.functional)")
    group.addoption("--conformance-loss", nargs="+", default=None, metavar="NAME", help="losses to check")
    group.addoption("--conformance-dtype", nargs="+", default=["float32", "float64"], metavar="NAME",
                    help="dtypes to check")
    group.addoption("--conformance-device", default="cpu", choices=("cpu", "cuda"), help="device to check on")
    group.addoption("--conformance-spec", action="append", default=[], metavar="FILE",
                    help="a spec file of your own, beside the shipped specs (repeatable; one with a shipped "
                         "loss's id replaces it)")
    group.addoption("--conformance-spec-dir", action="append", default=[], metavar="DIR",
                    help="every *.yaml spec file in DIR, as --conformance-spec (repeatable)")
    parser.addini("conformance_specs", type="paths", default=[],
                  help="spec files of your own (relative to the ini file), as --conformance-spec")
    parser.addini("conformance_spec_dirs", type="paths", default=[],
                  help="directories of spec files of your own (relative to the ini file), as --conformance-spec-dir")
    group.addoption("--conformance-capabilities", default=None, metavar="FILE",
                    help="YAML file of what the backend supports, in place of its loss_conformance_capabilities "
                         "attribute: items outside it are skipped as unsupported")
    group.addoption("--conformance-timeout", type=float, default=60.0, metavar="SECONDS",
                    help="longest one backend call may take before its item fails as a timeout (default: 60)")
    group.addoption("--conformance-counterexamples", type=int, default=3, metavar="N",
                    help="distinct causes a failing item looks for, each shown with its counterexample "
                         "(default: 3; 1 stops at the first)")


_CATALOGUE = pytest.StashKey[Any]()


def catalogue(config: pytest.Config) -> Any:
    """The session's catalogue (shipped specs plus the user's), built once, when first needed: the
    plugin is loaded in every pytest session, most of which never check a loss."""
    if _CATALOGUE not in config.stash:
        import sys

        from loss_conformance_reference.catalogue import Catalogue, CatalogueError
        from loss_conformance_reference.errors import SpecError

        files = [*config.getini("conformance_specs"), *config.getoption("conformance_spec")]
        dirs = [*config.getini("conformance_spec_dirs"), *config.getoption("conformance_spec_dir")]
        try:
            config.stash[_CATALOGUE] = Catalogue.build(files, dirs)
        except (CatalogueError, SpecError) as exc:
            raise pytest.UsageError(str(exc)) from None
        for notice in config.stash[_CATALOGUE].notices():
            print(f"loss-conformance: note: {notice}", file=sys.stderr)
    return config.stash[_CATALOGUE]


def pytest_configure(config: pytest.Config) -> None:
    # A bad user spec is a usage error before collection; without user specs the catalogue waits.
    if any((config.getini("conformance_specs"), config.getini("conformance_spec_dirs"),
            config.getoption("conformance_spec"), config.getoption("conformance_spec_dir"))):
        catalogue(config)


def _check_ids(config: pytest.Config) -> list[Any]:
    from loss_conformance.planning import plan

    specs = catalogue(config)
    names = config.getoption("conformance_loss") or list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        raise pytest.UsageError(f"unknown loss {', '.join(unknown)}")
    return plan([specs[n] for n in names], config.getoption("conformance_dtype"),
                [config.getoption("conformance_device")])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_check" in metafunc.fixturenames:
        checks = _check_ids(metafunc.config)
        ids = ["-".join(part.replace("*", "all") for part in (c.loss, c.check, c.reduction, c.dtype, c.device))
               for c in checks]
        metafunc.parametrize("conformance_check", checks, ids=ids)


@pytest.fixture(scope="session")
def conformance_runner(request: pytest.FixtureRequest) -> Any:
    import torch
    from hypothesis import settings

    from loss_conformance.backends import BackendError
    from loss_conformance.capabilities import load_capabilities, module_capabilities
    from loss_conformance.profiles import run_seed
    from loss_conformance.runner import Runner
    from loss_conformance.workers import IsolatedBackend
    from loss_conformance_reference.errors import SpecError

    if request.config.getoption("conformance_device") == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torch.set_num_threads(1)  # tiny examples: more threads only add synchronisation
    profile = PROFILES.get(settings.get_current_profile_name(), PROFILES["ci"])
    seed = request.config.getoption("hypothesis_seed", None)
    # The backend runs in worker processes: a crash or a hang fails its item, not the session.
    specs, path = catalogue(request.config), request.config.getoption("conformance_capabilities")
    try:
        backend = IsolatedBackend(request.config.getoption("backend"), specs,
                                  timeout=request.config.getoption("conformance_timeout"))
    except BackendError as exc:
        raise pytest.UsageError(str(exc)) from exc
    try:
        declared = load_capabilities(path, specs) if path else \
            module_capabilities(backend.capabilities, backend.name, specs) if backend.capabilities is not None else None
    except SpecError as exc:
        backend.close()
        raise pytest.UsageError(str(exc)) from None
    runner = Runner(specs, backend, settings().max_examples, run_seed(profile, int(seed) if seed is not None else None),
                    capabilities=declared,
                    counterexamples=max(1, request.config.getoption("conformance_counterexamples")))
    yield runner
    runner.close()
