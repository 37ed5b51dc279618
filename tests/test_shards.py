"""``run --shard K/N`` and ``merge``: disjoint, stable, balanced shards whose merged reports are the
unsharded run's, and merges of different runs refused."""
from __future__ import annotations

import json
import random

import pytest

from loss_conformance.cli import main
from loss_conformance.report import build_report, write_json
from loss_conformance.planning import plan
from loss_conformance.shards import Shard, assign, parse_shard, select
from loss_conformance_reference import shipped_specs

from tests.helpers import assert_refused_option
from tests.report_fixtures import TIMINGS, failing, record
from tests.test_cli import cli

FULL_PLAN = plan(shipped_specs().values(), ["float16", "bfloat16", "float32", "float64"], ["cpu", "cuda"])


# -- the split -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, shard", [("1/1", Shard(1, 1)), ("2/3", Shard(2, 3)), ("3/3", Shard(3, 3)),
                                         ("10/12", Shard(10, 12))])
def test_parse_shard(text, shard):
    assert parse_shard(text) == shard and str(shard) == text


@pytest.mark.parametrize("text", ["0/3", "4/3", "x/y", "1/0", "0/0", "-1/3", "1/-3", "1/3/5", "", "3", "1.5/3",
                                  "1/3x"])
def test_bad_shards_are_usage_errors(text, capsys):
    assert_refused_option("--shard", text, parse_shard, capsys)


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7, 16])
def test_shards_are_disjoint_cover_the_plan_and_are_balanced(count):
    shards = [select(FULL_PLAN, Shard(k, count)) for k in range(1, count + 1)]
    seen = [cid for part in shards for cid in part]
    assert sorted(seen, key=FULL_PLAN.index) == FULL_PLAN and len(set(seen)) == len(FULL_PLAN)
    sizes = [len(part) for part in shards]
    assert max(sizes) - min(sizes) <= 1
    for part in shards:  # each in plan order
        assert part == sorted(part, key=FULL_PLAN.index)


def test_assignment_is_stable_and_independent_of_order():
    owner = assign(FULL_PLAN, 5)
    shuffled = list(FULL_PLAN)
    random.Random(1).shuffle(shuffled)
    assert assign(shuffled, 5) == owner == assign(FULL_PLAN, 5)
    again = plan(shipped_specs().values(), ["float16", "bfloat16", "float32", "float64"], ["cpu", "cuda"])
    assert assign(again, 5) == owner


def test_groups_stay_together_and_every_shard_mixes_the_losses_and_the_checks():
    # A group (one loss, kind of check and device) is split only where a cut falls in it, and the
    # groups are shuffled before the cut: no shard holds only a few losses or kinds of check.
    losses, kinds = {c.loss for c in FULL_PLAN}, {c.check for c in FULL_PLAN}
    for count in (2, 4, 8):
        owner = assign(FULL_PLAN, count)
        shards_of = {}
        for cid in FULL_PLAN:
            shards_of.setdefault((cid.loss, cid.check, cid.device), set()).add(owner[cid])
        assert sum(len(s) - 1 for s in shards_of.values()) <= count - 1
        for k in range(1, count + 1):
            part = [c for c in FULL_PLAN if owner[c] == k]
            assert len({c.loss for c in part}) >= len(losses) // 2 and {c.check for c in part} == kinds


# -- sharded runs merged are the unsharded run --------------------------------------------------------------

RUN_ARGS = ["--backend", "tests.sample_backends:broken_l1", "--loss", "mse_loss", "l1_loss", "--max-examples", "5",
            "--dtype", "float64", "--check", "examples", "forward", "backward", "properties", "--counterexamples", "1",
            "--quiet"]
COMPARED = ("status", "examples", "seed", "message", "counterexample", "reproduce", "deviation")


def _key(r):
    return r["backend"], r["loss"], r["check"], r["reduction"], r["dtype"], r["device"]


def test_sharded_runs_merged_equal_the_unsharded_run(tmp_path, capsys):
    whole = tmp_path / "whole.json"
    done = cli("run", *RUN_ARGS, "--json", str(whole))
    assert done.returncode == 1, done.stdout + done.stderr  # broken_l1 fails: the verdict must survive the merge
    parts = []
    for k in (1, 2, 3):
        parts.append(tmp_path / f"shard{k}.json")
        shard = cli("run", *RUN_ARGS, "--shard", f"{k}/3", "--json", str(parts[-1]))
        assert shard.returncode in (0, 1), shard.stdout + shard.stderr
        assert json.loads(parts[-1].read_text())["run"]["shard"]["index"] == k
    merged = tmp_path / "merged.json"
    status = main(["merge", *map(str, parts), "--json", str(merged)])
    out = capsys.readouterr().out
    assert status == 1 and "verdict: not conforming" in out and "FAIL" in out
    a, m = json.loads(whole.read_text()), json.loads(merged.read_text())
    shards = [json.loads(p.read_text()) for p in parts]
    keys = [[_key(r) for r in s["records"]] for s in shards]
    assert not set(keys[0]) & set(keys[1]) and not set(keys[1]) & set(keys[2]) and not set(keys[0]) & set(keys[2])
    assert sum(s["run"]["shard"]["checks"] for s in shards) == shards[0]["run"]["shard"]["planned"]
    # The same records in the same order, with the same verdicts, seeds, examples and messages.
    assert [_key(r) for r in m["records"]] == [_key(r) for r in a["records"]]
    assert len({r["backend"] for r in a["records"]}) == 2  # the backend and the torch baseline
    for ra, rm in zip(a["records"], m["records"]):
        assert {f: ra.get(f) for f in COMPARED} == {f: rm.get(f) for f in COMPARED}, _key(ra)
    assert any(r["status"] == "fail" for r in m["records"])
    assert m["summary"] == a["summary"] and m["complete"] is True
    assert m["run"]["shards"] == {"count": 3, "merged": [1, 2, 3]}
    assert {k: v for k, v in m["run"].items() if k != "shards"} == a["run"]
    assert m["versions"] == a["versions"]
    assert m["timings"]["total_s"] == pytest.approx(sum(s["timings"]["total_s"] for s in shards), abs=1e-3)
    assert m["timings"]["wall_s"] == max(s["timings"]["wall_s"] for s in shards)  # the shards ran side by side
    # And diff finds nothing between them.
    assert main(["diff", str(whole), str(merged)]) == 0 and "0 changes" in capsys.readouterr().out


# -- merges refused, incomplete merges ----------------------------------------------------------------------

BASE_RUN = {"backend": "my_kernels", "backends": ["my_kernels"], "profile": "ci", "max_examples": 5, "seed": 7,
            "devices": ["cpu"], "dtypes": ["float32"], "losses": ["l1_loss"], "checks": ["forward"]}


def shard_report(tmp_path, name, index, count, records, run=None, **extra):
    run = {**BASE_RUN, **(run or {}), "shard": {"index": index, "count": count, "checks": len(records),
                                                "planned": 3}}
    report = build_report(records, TIMINGS, run)
    report.update(extra)
    write_json(report, tmp_path / name)
    return str(tmp_path / name)


def three_shards(tmp_path, statuses=("pass", "pass", "pass")):
    return [shard_report(tmp_path, f"s{k}.json", k, 3,
                         [(failing if status == "fail" else record)(status, reduction=reduction)])
            for k, (reduction, status) in enumerate(zip(("none", "mean", "sum"), statuses), 1)]


def run_merge(capsys, tmp_path, *reports):
    status = main(["merge", *reports, "--json", str(tmp_path / "out.json")])
    out, err = capsys.readouterr()
    return status, out, err


def test_merge_exit_status_follows_the_runs_rule(tmp_path, capsys):
    status, out, _ = run_merge(capsys, tmp_path, *three_shards(tmp_path))
    assert status == 0, out
    merged = json.loads((tmp_path / "out.json").read_text())
    assert merged["complete"] is True and merged["summary"]["pass"] == 3
    assert [r["reduction"] for r in merged["records"]] == ["none", "mean", "sum"]  # plan order
    assert merged["timings"]["total_s"] == pytest.approx(3 * TIMINGS["total_s"])
    status, _, _ = run_merge(capsys, tmp_path, *three_shards(tmp_path, ("pass", "fail", "pass")))
    assert status == 1
    status, out, _ = run_merge(capsys, tmp_path, *three_shards(tmp_path, ("skipped",) * 3))
    assert status == 3 and "nothing was checked" in out


def test_a_missing_or_incomplete_shard_makes_an_incomplete_merge_that_is_never_green(tmp_path, capsys):
    one, two, three = three_shards(tmp_path)
    status, out, err = run_merge(capsys, tmp_path, three, one)
    assert status == 3 and "shard 2/3 missing" in out and "2/3" in err
    assert json.loads((tmp_path / "out.json").read_text())["complete"] is False
    cut = shard_report(tmp_path, "cut.json", 2, 3, [record(reduction="mean")], complete=False, interrupted="SIGTERM")
    status, out, err = run_merge(capsys, tmp_path, one, cut, three)
    assert status == 3 and "cut.json" in err
    assert json.loads((tmp_path / "out.json").read_text())["complete"] is False
    bad = shard_report(tmp_path, "bad.json", 2, 3, [failing(reduction="mean")], complete=False)
    assert run_merge(capsys, tmp_path, one, bad)[0] == 1  # a failure is a failure, complete or not


@pytest.mark.parametrize("change, needle", [
    ({"run": {"seed": 8}}, "run.seed is 8 there and 7 here"),
    ({"run": {"profile": "thorough"}}, "run.profile"),
    ({"run": {"dtypes": ["float64"]}}, "run.dtypes"),
    ({"versions": {"torch": "0.0.1"}}, "versions.torch is '0.0.1'"),
    ({"versions": {"hypothesis": "1.0"}}, "versions.hypothesis"),
    ({"count": 4}, "shard count is 4 there and 3 here"),
])
def test_merge_refuses_shards_of_different_runs(tmp_path, capsys, change, needle):
    one, _, three = three_shards(tmp_path)
    report = build_report([record(reduction="mean")], TIMINGS,
                          {**BASE_RUN, **change.get("run", {}),
                           "shard": {"index": 2, "count": change.get("count", 3), "checks": 1, "planned": 3}})
    report["versions"] = {**report["versions"], **change.get("versions", {})}
    write_json(report, tmp_path / "other.json")
    status, out, err = run_merge(capsys, tmp_path, one, str(tmp_path / "other.json"), three)
    assert status == 2 and out == "" and not (tmp_path / "out.json").exists()
    assert needle in err and "other.json" in err and "not a shard of the same run" in err


def test_merge_refuses_overlapping_shards_and_reports_that_are_not_shards(tmp_path, capsys):
    one, two, three = three_shards(tmp_path)
    status, _, err = run_merge(capsys, tmp_path, one, two, two)
    assert status == 2 and "shard 2/3 is given twice" in err
    overlap = shard_report(tmp_path, "overlap.json", 3, 3, [record(reduction="mean")])
    status, _, err = run_merge(capsys, tmp_path, one, two, overlap)
    assert status == 2 and "both hold my_kernels l1_loss forward reduction=mean" in err and "overlap.json" in err
    plain = tmp_path / "plain.json"
    write_json(build_report([record()], TIMINGS, BASE_RUN), plain)
    status, _, err = run_merge(capsys, tmp_path, one, str(plain))
    assert status == 2 and "plain.json: not the report of a shard" in err
    status, _, err = run_merge(capsys, tmp_path, one, str(tmp_path / "nowhere.json"))
    assert status == 2 and "nowhere.json: no such file" in err
    assert not (tmp_path / "out.json").exists()


def test_merge_needs_an_output(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["merge", "a.json"])
    assert exited.value.code == 2
