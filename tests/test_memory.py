"""The large check's allocator setting: taken once where glibc gives it, asked again without change."""
from __future__ import annotations

import sys

from loss_conformance import memory


def test_large_blocks_are_kept_by_glibcs_allocator_once_asked():
    kept = memory.keep_large_blocks()
    assert kept == (sys.platform.startswith("linux") and memory._kept)
    assert memory.keep_large_blocks() == kept  # asking again changes nothing
