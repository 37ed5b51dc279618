"""The parent's warm-up before it forks workers (``loss_conformance.warm``): after it, no request of any
check loads a further part of torch, so a forked worker inherits everything its requests use."""
from __future__ import annotations

import json
import subprocess
import sys

# In a fresh interpreter: this test process has long since loaded everything.
PROBE = r"""
import json, sys
import numpy as np
import torch
from loss_conformance.backends import load_backend
from loss_conformance.execution import Request, execute
from loss_conformance_reference import shipped_specs

specs = shipped_specs()
backend = load_backend("torch.nn.functional")
cold = set(sys.modules)
if sys.argv[1] == "warm":
    from loss_conformance.warm import warm_before_fork
    warm_before_fork()
warmed = set(sys.modules)
x, y = np.linspace(-1.0, 1.0, 6).reshape(2, 3), np.linspace(0.5, -0.5, 6).reshape(2, 3)
wrt, ones = ("input", "target"), {"input": np.ones((2, 3)), "target": np.ones((2, 3))}
raised = []
for op, extra in (("call", {"cotangent": np.asarray(1.0)}), ("gradcheck", {"cotangent": np.asarray(1.0)}),
                  ("jvp", {"tangents": ones}), ("vmap", {}),
                  ("jvp_of_grad", {"cotangent": np.asarray(1.0), "tangents": ones})):
    inputs = {"input": np.stack([x, x]), "target": np.stack([y, y])} if op == "vmap" else {"input": x, "target": y}
    reply = execute(backend, specs["l1_loss"], Request(op, "l1_loss", inputs, {"reduction": "mean"}, "cpu",
                                                       wrt, double_backward=True, **extra))
    if reply.raised or reply.derived_raised or reply.gradcheck:
        raised.append((op, reply.raised or reply.derived_raised or reply.gradcheck))
loaded = sorted(m for m in set(sys.modules) - warmed if m.split(".")[0] in ("torch", "sympy", "functorch"))
print(json.dumps({"by_warm": sorted(set(warmed) - cold), "by_requests": loaded, "raised": raised}))
"""


def _probe(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_after_the_warm_up_no_request_loads_more_of_torch():
    warm = _probe("warm")
    assert not warm["raised"], warm["raised"]
    assert warm["by_requests"] == [], warm["by_requests"][:20]
    # What the warm-up saves a forked worker: without it, the requests themselves load these.
    cold = _probe("cold")
    assert not cold["raised"], cold["raised"]
    assert {"sympy", "torch._dynamo"} <= set(cold["by_requests"]) and {"sympy", "torch._dynamo"} <= set(warm["by_warm"])


def test_a_replacement_worker_is_forked_from_a_warmed_process(monkeypatch):
    from loss_conformance import workers
    from loss_conformance_reference import shipped_specs

    warmed = []
    monkeypatch.setattr(workers, "warm_before_fork", lambda: warmed.append(True))
    worker = workers.Worker(workers.BackendSource("torch.nn.functional"), workers.SpecSource(shipped_specs()))
    try:
        worker.start()
        assert warmed == []  # the first worker loads what it uses itself: one process, no gain
        worker.process.kill()
        worker.process.join(5)
        worker._stop()
        worker.start()  # what request() does after a lost worker
        assert warmed == [True]
    finally:
        worker.close()


def _events_of_a_run(tmp_path, monkeypatch, *checks: str, jobs: str = "1") -> list[str]:
    """What a command-line run of ``checks`` did, in order, in any of its processes: warmed up
    (``warm``), started a worker (``start``)."""
    from loss_conformance import cli as cli_module, workers

    from tests.test_cli import cli

    log = tmp_path / "events"
    log.write_text("")

    def event(name: str) -> None:
        with log.open("a") as f:
            f.write(name + "\n")

    start = workers.Worker.start
    monkeypatch.setattr(cli_module, "warm_before_fork", lambda: event("warm"))
    monkeypatch.setattr(workers.Worker, "start", lambda self: (event("start"), start(self))[1])
    done = cli("run", "--loss", "l1_loss", "--dtype", "float64", "--max-examples", "2", "--seed", "0", "--quiet",
               "--jobs", jobs, "--check", *checks)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return log.read_text().split()


def test_a_run_that_checks_derivatives_warms_up_before_its_worker_forks(tmp_path, monkeypatch):
    events = _events_of_a_run(tmp_path, monkeypatch, "forward", "backward")
    assert events[:1] == ["warm"] and events.count("warm") == 1 and "start" in events


def test_jobs_are_forked_after_the_warm_up(tmp_path, monkeypatch):
    # The backend's worker is started once in the parent to vet it, then one per job process.
    events = _events_of_a_run(tmp_path, monkeypatch, "forward", "backward", jobs="2")
    assert events[:1] == ["warm"] and events.count("warm") == 1 and events.count("start") >= 3, events


def test_a_run_whose_oracle_does_not_differentiate_does_not_warm_up(tmp_path, monkeypatch):
    # Nothing in the parent would use what the warm-up loads: it would only cost time.
    events = _events_of_a_run(tmp_path, monkeypatch, "forward", "properties")
    assert "warm" not in events and "start" in events


def test_which_checks_differentiate_in_the_parent():
    from loss_conformance.planning import CHECK_NAMES
    from loss_conformance.warm import DIFFERENTIATING_CHECKS, differentiates

    # Their oracles differentiate (a vector-Jacobian or Jacobian-vector product, gradcheck's own
    # gradient); vmap's compares values, and the worked examples' gradients are stated in the spec.
    assert DIFFERENTIATING_CHECKS == {"backward", "gradcheck", "forward_ad", "jvp_of_grad", "large"}
    assert DIFFERENTIATING_CHECKS <= set(CHECK_NAMES)
    assert not differentiates({"examples", "forward", "properties", "vmap"})
    assert all(differentiates([check, "forward"]) for check in DIFFERENTIATING_CHECKS)
