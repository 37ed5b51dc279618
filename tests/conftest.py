"""Test configuration: the suite runs on every core (pytest-xdist), and CUDA-marked tests skip
cleanly on machines without a GPU."""
from __future__ import annotations

import os
import tempfile

import pytest
import torch

from loss_conformance.warm import warm_before_fork

torch.set_num_threads(1)  # the suite's examples are tiny: threads only add synchronisation
# Hundreds of runners start a worker each in a test process: what torch loads on first use is loaded
# here once, and inherited by every worker forked later, instead of loaded again by each.
warm_before_fork()
# JAX backends' compiled functions go to a scratch directory, not the user's cache (workers inherit it).
os.environ.setdefault("LOSS_CONFORMANCE_JAX_CACHE", tempfile.mkdtemp(prefix="loss-conformance-jax-"))


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """With pytest-xdist installed and neither ``-n`` nor ``--tx`` given, run as ``-n auto``: one
    worker process per core, with work stealing (``--dist worksteal``) unless ``--dist`` is given.

    Set here rather than in ``addopts`` so that ``-n 0`` and ``-p no:xdist`` both run the suite
    serially, and an environment without pytest-xdist still runs it. Runs before xdist's own
    ``pytest_cmdline_main``, which turns ``auto`` into a count (and into a serial run under ``--pdb``).
    """
    if not config.pluginmanager.hasplugin("xdist") or hasattr(config, "workerinput"):
        return
    if config.option.numprocesses is None and not config.option.tx:
        config.option.numprocesses = "auto"
        if config.option.dist == "no":
            # An idle worker takes tests queued for a busy one: the meta-tests take up to 20 s
            # each, and with plain load balancing one worker can be left with several at the end.
            config.option.dist = "worksteal"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
