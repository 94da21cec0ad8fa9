"""tools/gpu-check, as far as a machine without a GPU can check it: the dependencies a bare GPU host lacks are packed
and used (--packed pretends the host has none), the LibTorch-only core builds with -DJITVISION_WITH_OPENCV=OFF, its
tests pass, and the forward figures come out as JSON (--cpu: FP32 on the CPU instead of FP32/FP16 on CUDA)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _support import REPO_ROOT

SCRIPT = REPO_ROOT / "tools" / "gpu-check"


def gpu_check(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ})


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    for needed in ("/usr/include/nlohmann/json.hpp", "/usr/src/googletest", "/usr/include/zlib.h"):
        if not Path(needed).exists():
            pytest.skip(f"this machine lacks {needed}, which pack-deps copies")
    out = tmp_path_factory.mktemp("gpu-deps")
    proc = gpu_check("pack-deps", out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_pack_deps_makes_a_relocatable_set(packed):
    assert (packed / "nlohmann_json" / "include" / "nlohmann" / "json.hpp").is_file()
    assert (packed / "nlohmann_json" / "nlohmann_jsonConfig.cmake").is_file()
    assert "/usr/include" not in (packed / "nlohmann_json" / "nlohmann_jsonConfig.cmake").read_text()
    assert (packed / "googletest" / "CMakeLists.txt").is_file()
    assert (packed / "zlib" / "zlib.h").is_file() and (packed / "zlib" / "zconf.h").is_file()


def test_plan_takes_every_dependency_from_the_packed_set(packed):
    proc = gpu_check("--cpu", "--packed", "--plan", "--deps", packed, "--python", sys.executable)
    assert proc.returncode == 0, proc.stderr
    assert f"from {packed}: nlohmann_json googletest zlib" in proc.stdout
    assert "-DJITVISION_WITH_OPENCV=OFF" in proc.stdout and f"-Dnlohmann_json_DIR={packed}/nlohmann_json" in proc.stdout


def test_bad_usage_and_a_missing_gpu_are_one_line_each():
    proc = gpu_check("--frobnicate")
    assert proc.returncode == 2 and "unknown argument '--frobnicate'" in proc.stderr
    import torch

    if not torch.cuda.is_available():
        proc = gpu_check("--python", sys.executable, "--build", REPO_ROOT / "build" / "gpu-check-unused")
        assert proc.returncode == 2 and "torch sees no CUDA GPU here (use --cpu" in proc.stderr


@pytest.mark.slow
def test_cpu_dry_run_builds_the_core_alone_runs_its_tests_and_prints_figures(packed):
    # Kept under build/ so a second run only rebuilds what changed (the first build takes minutes on 2 cores).
    proc = gpu_check("--cpu", "--packed", "--deps", packed, "--python", sys.executable, "--budget-s", "1500",
                     "--build", REPO_ROOT / "build" / "gpu-check-cpu", timeout=1600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["mode"] == "cpu" and out["from_packed_deps"] == ["nlohmann_json", "googletest", "zlib"]
    assert out["tests"]["ok"] and "100% tests passed" in out["tests"]["summary"]
    assert len(out["forward"]) == 1
    row = out["forward"][0]
    assert (row["device"], row["dtype"], row["batch"], row["shape"]) == ("cpu", "fp32", 1, [1, 3, 384, 640])
    assert row["median_ms"] > 0 and row["max_abs_diff_vs_cpu_fp32"] == 0.0
    # no OpenCV in that build: the app and its io layer were not configured
    cache = (REPO_ROOT / "build" / "gpu-check-cpu" / "CMakeCache.txt").read_text()
    assert "JITVISION_WITH_OPENCV:BOOL=OFF" in cache and "OpenCV_DIR" not in cache
