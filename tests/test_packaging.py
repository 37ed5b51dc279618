"""A non-editable install ships the YAML specs and schemas and works from any directory."""
from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Left out of the copy that is built: what git ignores, as a fresh clone (CI) lacks it too.
NOT_SOURCE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".tox", ".venv",
                                    ".hypothesis", ".pytest_cache", "reports")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy of the tree: setuptools builds in place (build/, *.egg-info), where a stale
    # build/lib can leak into the wheel, and where two builds at once (each pytest-xdist worker
    # that runs a test of this module builds its own wheel) would tread on each other's files.
    source = tmp_path_factory.mktemp("source") / "loss-conformance"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True, timeout=300)
    return next(out.glob("loss_conformance-*.whl"))


def test_wheel_contains_specs_schemas_and_entry_points(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    specs = sorted(Path(n).name for n in names if n.startswith("loss_conformance_spec/losses/") and n.endswith(".yaml"))
    assert specs == sorted(p.name for p in (ROOT / "spec" / "losses").glob("*.yaml"))
    assert "loss_conformance_spec/loss.schema.json" in names and "loss_conformance_spec/deviations.schema.json" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "loss-conformance = loss_conformance.cli:main" in entry_points
    assert "[pytest11]" in entry_points


def test_installed_copy_runs_from_another_directory(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code = ("import sys; sys.path.insert(0, sys.argv[1]);"
            "import loss_conformance_spec as spec, loss_conformance_reference; from loss_conformance.cli import main;"
            "assert spec.__file__.startswith(sys.argv[1]), spec.__file__;"
            "sys.exit(main(['run', '--loss', 'mse_loss', '--max-examples', '3', '--dtype', 'float64', '--quiet']))")
    done = subprocess.run([sys.executable, "-c", code, str(target)], cwd=elsewhere, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mse_loss" in done.stdout


def _pins(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("==", 1) for line in lines if line and not line.startswith("#"))


def test_the_per_torch_lock_is_the_lock_less_torch():
    """tox's torch213 / torch214 envs take every pin but torch's from lock-without-torch.txt: it must not
    drift from the lock CI installs, and must not pin a torch of its own."""
    lock = _pins(ROOT / "requirements" / "lock.txt")
    assert "torch" in lock
    assert _pins(ROOT / "requirements" / "lock-without-torch.txt") == {k: v for k, v in lock.items() if k != "torch"}
