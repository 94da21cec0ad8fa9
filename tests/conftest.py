"""Shared fixtures: where the repository, the built binary and the test data are, and how to run the binary."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from _support import _exporter_fingerprint

REPO_ROOT = Path(__file__).resolve().parents[1]

CLI_TIMEOUT_S = 300


def pytest_collection_modifyitems(config, items):
    """Tests marked `slow` (minutes each: a whole build or benchmark report) run only with JITVISION_SLOW_TESTS=1,
    as `make slow-test` sets it; `make test` keeps within CI's time budget without them."""
    if os.environ.get("JITVISION_SLOW_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="slow (minutes): run by `make slow-test` (JITVISION_SLOW_TESTS=1)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def jitvision_bin(repo_root) -> Path:
    path = repo_root / "build" / "jitvision"
    if not path.is_file():
        pytest.skip(f"{path} is not built (run `make test`, which builds it first)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    root = os.environ.get("JITVISION_DATA_DIR")
    if not root:
        pytest.skip("JITVISION_DATA_DIR is not set: tests that need the real data set are skipped")
    return Path(root)


@pytest.fixture(scope="module")
def one_torch_thread():
    """In-process torch work on one thread: on two shared cores a second OpenMP thread mostly waits."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def python_exe() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def run_cli(jitvision_bin):
    """``run_cli(args, **kw)`` runs the built binary with text output captured; ``timeout`` defaults to 300 s."""

    def run(args, **kw) -> subprocess.CompletedProcess:
        kw.setdefault("timeout", CLI_TIMEOUT_S)
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run([str(jitvision_bin), *map(str, args)], **kw)

    return run


@pytest.fixture(scope="session")
def yolov5n_exports(data_dir) -> dict:
    """The official yolov5n imported by our exporter: {"dynamic": path, "fixed": path}.

    Cached under build/test-cache keyed by the weights and the exporter's source, because an export costs ~20 s.
    """
    weights = data_dir / "weights" / "yolov5n.pt"
    cache = REPO_ROOT / "build" / "test-cache" / f"yolov5n-{_exporter_fingerprint(weights)}"
    cache.mkdir(parents=True, exist_ok=True)
    made = {}
    for kind, extra in (("dynamic", []), ("fixed", ["--fixed"])):
        path = cache / f"yolov5n-{kind}.torchscript"
        if not path.is_file():
            tmp = path.with_suffix(".partial")
            proc = subprocess.run([sys.executable, "-m", "jitvision", "yolov5", "import", str(weights),
                                   "--out", str(tmp), *extra], capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, proc.stderr
            tmp.rename(path)
        made[kind] = path
    return made
