"""Test configuration: CUDA-marked tests skip cleanly on machines without a GPU."""
from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)  # the suite's examples are tiny: threads only add synchronisation


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)
