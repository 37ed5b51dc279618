"""A torch.compile backend that falls back to eager past Dynamo's recompile limit is reported as such:
without it, the run would go on checking eager kernels as if they were the compiled ones."""
from __future__ import annotations

import logging

from loss_conformance.compile_fallbacks import drain
from loss_conformance.records import CheckId
from loss_conformance.report.terminal import render_summary
from loss_conformance.runner import Runner
from loss_conformance_reference import shipped_specs


def test_the_log_line_of_a_fallback_is_drained_once():
    drain()
    logging.getLogger("torch._dynamo.convert_frame").warning(
        "torch._dynamo hit config.%s (%s)\n   function: %s\n   last reason: %s", "recompile_limit", 8,
        "'mse_loss' (losses.py:1)", "size mismatch")
    assert drain() == ("torch._dynamo hit config.recompile_limit (8), function: 'mse_loss' (losses.py:1): "
                       "later calls ran eagerly",)
    assert drain() == ()


def test_a_run_on_a_compiled_backend_says_it_fell_back_to_eager():
    specs = {"mse_loss": shipped_specs()["mse_loss"]}
    with Runner(specs, "tests.compiled_backend", 20, 0) as runner:
        (record,) = runner.run([CheckId("mse_loss", "forward", "none", "float32", "cpu")])
    assert record.status == "pass"  # eager mse_loss conforms: the record must still say what ran
    assert "torch.compile fell back to eager (torch._dynamo hit config.recompile_limit (2)" in record.message
    assert record.detail["compile_fallbacks"]
    assert "eager, not compiled: tests.compiled_backend mse_loss" in render_summary([record], {})


def test_an_uncompiled_backend_has_no_such_notice():
    specs = {"mse_loss": shipped_specs()["mse_loss"]}
    with Runner(specs, "torch.nn.functional", 20, 0) as runner:
        (record,) = runner.run([CheckId("mse_loss", "forward", "none", "float32", "cpu")])
    assert "torch.compile" not in record.message and not (record.detail or {}).get("compile_fallbacks")
