"""The exit status: green only when every check ran and conformed; one clear error for an
environment that cannot work."""
from __future__ import annotations

import pytest
import torch

from loss_conformance import cli
from loss_conformance.records import CheckId, Record
from loss_conformance.verdict import EXIT_NONCONFORMING, EXIT_NOTHING_CHECKED, EXIT_OK, verdict

BACKEND = "mine"


def rec(status: str, backend: str = BACKEND, dtype: str = "float32", loss: str = "mse_loss", message: str = "") -> Record:
    return Record.for_check(CheckId(loss, "forward", "mean", dtype, "cpu"), backend, status, message=message)


@pytest.mark.parametrize("status", ["fail", "crashed", "timeout", "nondeterministic", "error"])
def test_any_failing_status_is_exit_1(status):
    assert verdict([rec("pass"), rec(status)], BACKEND, ["float32"], ["cpu"])[0] == EXIT_NONCONFORMING


def test_known_deviations_and_missing_losses_beside_passes_are_green():
    records = [rec("pass"), rec("known_deviation"), rec("not_implemented", loss="l1_loss")]
    assert verdict(records, BACKEND, ["float32"], ["cpu"])[0] == EXIT_OK


def test_baseline_passing_does_not_make_a_backend_of_nothing_green():
    records = [rec("not_implemented"), rec("pass", backend="torch.nn.functional")]
    status, reason = verdict(records, BACKEND, ["float32"], ["cpu"])
    assert status == EXIT_NOTHING_CHECKED and "implements none of the selected losses" in reason


@pytest.mark.parametrize("status", ["skipped", "unsupported"])
def test_a_dtype_with_every_check_skipped_is_exit_3(status):
    records = [rec("pass", dtype="float32"), rec(status, dtype="float16", message="no float16 tolerance")]
    status_code, reason = verdict(records, BACKEND, ["float32", "float16"], ["cpu"])
    assert status_code == EXIT_NOTHING_CHECKED and "float16" in reason and "no float16 tolerance" in reason


def test_no_records_is_exit_3():
    assert verdict([], BACKEND, ["float32"], ["cpu"])[0] == EXIT_NOTHING_CHECKED


def test_torch_that_cannot_talk_to_numpy_is_one_configuration_error(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("Numpy is not available")

    monkeypatch.setattr(torch, "from_numpy", broken)
    assert cli.main(["run", "--loss", "mse_loss"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot exchange arrays with NumPy" in err and "Numpy is not available" in err
