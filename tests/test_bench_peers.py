"""The peers of `make bench` (python/jitvision/peers.py): ONNX Runtime and OpenVINO timed on the same model and input,
with their difference from the TorchScript file, when the bench-only environment (.venv-bench, `make bench-env`)
exists; without it a report that says why. `make bench BENCH_ARGS=--quick` runs both ways."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from _support import REPO_ROOT
from jitvision.benchreport import peer_lines
from jitvision.peers import PEERS, bench_env_path, cpu_has_bf16

DETECTOR = REPO_ROOT / "models" / "digits_yolov5n.torchscript"
SHAPE = "1x3x256x320"


def peers(*args, env_dir=None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "python")}
    if env_dir is not None:
        env["JITVISION_BENCH_ENV"] = str(env_dir)
    proc = subprocess.run([sys.executable, "-m", "jitvision.peers", *map(str, args), "--json"], capture_output=True,
                          text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def peers_installed() -> bool:
    return (bench_env_path() / "onnxruntime").is_dir() and (bench_env_path() / "openvino").is_dir()


def test_without_the_bench_environment_the_peers_say_why(tmp_path):
    out = peers("--model", DETECTOR, "--shape", SHAPE, "--iters", "2", env_dir=tmp_path / "absent")
    assert out["peers"] == {}
    assert "no bench environment" in out["skipped"] and "make bench-env" in out["skipped"]


@pytest.mark.skipif(not peers_installed(), reason="no .venv-bench: `make bench-env` installs ONNX Runtime and OpenVINO")
def test_peers_run_the_same_model_and_match_it():
    out = peers("--model", DETECTOR, "--shape", SHAPE, "--threads", "1", "--warmup", "1", "--iters", "2")
    assert out["skipped"] is None and out["shape"] == [1, 3, 256, 320]
    assert set(out["peers"]) == set(PEERS)
    for name, entry in out["peers"].items():
        if name.endswith("bf16") and not cpu_has_bf16():
            assert "bf16" in entry["skipped"]
            continue
        assert entry["skipped"] is None, entry["skipped"]
        assert entry["forward"]["n"] == 2 and entry["forward"]["median_ms"] > 0 and entry["version"]
        if name.endswith("bf16"):  # raw rows in bf16 move by pixels (10+ px on boxes nobody keeps): only reported
            assert math.isfinite(entry["max_abs_diff"]) and entry["max_abs_diff"] > 0
        else:  # fp32 runtimes agree with TorchScript to float rounding (rows are pixels and probabilities)
            assert entry["max_abs_diff"] < 0.01, (name, entry["max_abs_diff"])


def cpp_round(peers_result: dict) -> dict:
    return {"configs": {"det-384": {"cpp": {"forward": {"median_ms": 10.0, "min_ms": 9.0}}}}, "peers": peers_result,
            "peers_command": "python -m jitvision.peers ..."}


def test_report_sets_the_peers_beside_jitvision_or_says_why_not():
    entry = {"version": "1.32.0", "skipped": None, "max_abs_diff": 0.0008,
             "forward": {"median_ms": 8.0, "min_ms": 7.5}}
    present = {"skipped": None, "shape": [1, 3, 384, 640], "threads": 2, "onnx_opset": 17,
               "reference": "the TorchScript file as loaded",
               "peers": {"onnxruntime fp32": entry,
                         "openvino bf16": {"version": "2026.4.1-x", "skipped": "this CPU has no avx512_bf16/amx_bf16"}}}
    text = "\n".join(peer_lines({"rounds": [cpp_round(present)]}))
    assert "| jitvision (C++, TorchScript, the app's form) | 10.00 | 9.00 | 1.00 |" in text
    assert "| onnxruntime fp32 1.32.0 | 8.00 | 7.50 | 0.80 | 0.0008 |" in text
    assert "| openvino bf16 2026.4.1 | - | - | - | skipped: this CPU has no avx512_bf16/amx_bf16 |" in text
    absent = {"skipped": "no bench environment at /x (make bench-env ...)", "peers": {}}
    assert "Not measured: no bench environment at /x" in "\n".join(peer_lines({"rounds": [cpp_round(absent)]}))
    assert peer_lines({"rounds": [{}]}) == []  # a report made before peers existed


# Each is a whole `make bench BENCH_ARGS=--quick` run: ~10 min on 2 idle-ish cores, more on a busy machine.
@pytest.mark.slow
@pytest.mark.parametrize("with_peers", [False, True])
def test_quick_bench_report_with_and_without_peers(tmp_path, jitvision_bin, with_peers):
    if with_peers and not peers_installed():
        pytest.skip("no .venv-bench: `make bench-env` installs ONNX Runtime and OpenVINO")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "python"),
           "JITVISION_BENCH_ENV": str(bench_env_path() if with_peers else tmp_path / "absent")}
    report = tmp_path / "quick.md"
    proc = subprocess.run([sys.executable, "-m", "jitvision.benchreport", "--quick", "--out", str(report), "--chart",
                           str(tmp_path / "quick.png"), "--raw", str(tmp_path / "quick.json")],
                          capture_output=True, text=True, timeout=2400, env=env, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = report.read_text()
    assert "## Peers: ONNX Runtime and OpenVINO" in text
    if with_peers:
        assert "| onnxruntime fp32 " in text and "| openvino f32 " in text
    else:
        assert "Not measured: no bench environment" in text
