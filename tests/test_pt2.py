"""AOTInductor packages (.pt2): exported and verified in Python, run by the C++ app wherever TorchScript runs.

The packages are compiled once (minutes on this CPU) and cached under build/test-cache, keyed by the exporters' source
and the weights.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from _support import REPO_ROOT, _exporter_fingerprint
from test_detect_parity import assert_same_frames, iou, native

MNIST = REPO_ROOT / "models" / "mnist.torchscript"
PT2_SOURCES = [REPO_ROOT / "python" / "jitvision" / "pt2.py", REPO_ROOT / "python" / "jitvision" / "mnist" /
               "export.py"]
TRUST = ["--trust-model"]


def export(args, out: Path) -> Path:
    if not out.is_file():  # the exporters write atomically: a file there is a whole, verified package
        proc = subprocess.run([sys.executable, "-m", "jitvision", *map(str, args), "--out", str(out)],
                              capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def pt2_cache(data_dir) -> Path:
    weights = data_dir / "weights" / "yolov5n.pt"
    cache = REPO_ROOT / "build" / "test-cache" / f"pt2-{_exporter_fingerprint(weights, MNIST, *PT2_SOURCES)}"
    cache.mkdir(parents=True, exist_ok=True)
    return cache


@pytest.fixture(scope="session")
def yolov5n_pt2(pt2_cache, data_dir) -> Path:
    return export(["yolov5", "import", data_dir / "weights" / "yolov5n.pt", "--format", "pt2"],
                  pt2_cache / "yolov5n.pt2")


@pytest.fixture(scope="session")
def mnist_pt2(pt2_cache) -> Path:
    return export(["mnist", "export", MNIST], pt2_cache / "mnist.pt2")


@pytest.fixture(scope="module")
def photos(data_dir):
    return [data_dir / "images" / "bus.jpg", data_dir / "images" / "zidane.jpg"]


def one_error_line(proc) -> str:
    """The error line, after at most the one warning a trusted package gets."""
    lines = [line for line in proc.stderr.strip().splitlines() if "run unchecked (trusted)" not in line]
    assert len(lines) == 1 and lines[0].startswith("jitvision: error: "), proc.stderr
    return lines[0]


def test_package_carries_our_metadata_and_its_verification(yolov5n_pt2):
    from jitvision.pt2 import jitvision_json, package_metadata

    meta = jitvision_json(str(yolov5n_pt2))
    assert meta["task"] == "detect" and meta["export"] == "pt2" and meta["dynamic"] and meta["letterbox"] == "rect"
    assert meta["dtype"] == "fp32" and meta["device"] == "cpu" and meta["names"][:2] == ["person", "bicycle"]
    assert meta["verification"]["sizes"] == [[640, 640], [384, 640], [320, 256]]
    assert package_metadata(str(yolov5n_pt2))["AOTI_DEVICE_KEY"] == "cpu"


def test_detect_matches_torchscript(yolov5n_pt2, yolov5n_exports, photos, run_cli):
    """Same classes, boxes within 1 px, confidences within 0.002 as the TorchScript export of the same weights."""
    pt2, stderr = native(run_cli, yolov5n_pt2, photos, *TRUST)
    torchscript, _ = native(run_cli, yolov5n_exports["dynamic"], photos)
    assert_same_frames(pt2, torchscript)
    assert [r["shape"] for r in pt2] == [r["shape"] for r in torchscript]
    assert sum(d["name"] == "person" for d in pt2[1]["detections"]) == 2
    assert "compiled native code, run unchecked" in stderr


def test_detect_at_another_size_uses_the_dynamic_package(yolov5n_pt2, yolov5n_exports, photos, run_cli):
    pt2, _ = native(run_cli, yolov5n_pt2, photos[:1], "--img", "320", *TRUST)
    torchscript, _ = native(run_cli, yolov5n_exports["dynamic"], photos[:1], "--img", "320")
    assert_same_frames(pt2, torchscript)


def test_untrusted_package_is_refused(yolov5n_pt2, photos, run_cli):
    proc = run_cli(["detect", "--model", yolov5n_pt2, "--source", photos[0], "--json", "-"])
    assert proc.returncode == 3 and proc.stdout == ""
    line = one_error_line(proc)
    assert "AOTInductor package (.pt2)" in line and "--trust-model" in line and "docs/security.md" in line


def test_environment_variable_trusts_it_too(mnist_pt2, data_dir, run_cli):
    import os

    env = dict(os.environ, JITVISION_TRUST_MODEL="1")
    proc = run_cli(["digits", "--model", mnist_pt2, data_dir / "images" / "six.jpg"], env=env)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(": 6 (prob 0.9828)"), proc.stdout + proc.stderr


def test_digits_match_torchscript(mnist_pt2, repo_root, run_cli, tmp_path):
    samples = tmp_path / "samples"
    subprocess.run([sys.executable, "-m", "jitvision", "mnist", "samples", "--out", str(samples)], check=True,
                   capture_output=True, timeout=300)
    pt2 = run_cli(["digits", "--json", "--model", mnist_pt2, *TRUST, samples])
    torchscript = run_cli(["digits", "--json", "--model", MNIST, samples])
    assert pt2.returncode == 0 and torchscript.returncode == 0, pt2.stderr
    got = [json.loads(line) for line in pt2.stdout.splitlines()]
    want = [json.loads(line) for line in torchscript.stdout.splitlines()]
    assert len(got) == len(want) >= 10
    for g, w in zip(got, want):
        assert (g["source"], g["digit"]) == (w["source"], w["digit"])
        assert max(abs(a - b) for a, b in zip(g["probs"], w["probs"])) < 1e-4


def test_info_names_the_format_and_the_contract(yolov5n_pt2, run_cli):
    proc = run_cli(["info", "--json", yolov5n_pt2, *TRUST])
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["format"] == "pt2" and info["kind"] == "detector" and "forward" not in info
    assert info["contract"]["dynamic"] and info["contract"]["classes"] == 80
    torchscript = json.loads(run_cli(["info", "--json", MNIST]).stdout)
    assert torchscript["format"] == "torchscript"


def test_info_graph_is_for_torchscript_only(mnist_pt2, run_cli):
    proc = run_cli(["info", "--graph", mnist_pt2, *TRUST])
    assert proc.returncode == 3 and "no TorchScript graph" in one_error_line(proc)


def test_bench_times_a_package(yolov5n_pt2, run_cli):
    proc = run_cli(["bench", "--model", yolov5n_pt2, *TRUST, "--img", "320", "--warmup", "1", "--iters", "2",
                    "--json"])
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["task"] == "detect" and out["shape"] == [1, 3, 320, 320] and out["forward"]["median_ms"] > 0


@pytest.mark.parametrize("command", ["detect", "digits"])
def test_a_package_for_another_task_is_a_contract_error(command, yolov5n_pt2, mnist_pt2, data_dir, run_cli):
    image = data_dir / "images" / "six.jpg"
    if command == "detect":
        proc = run_cli(["detect", "--model", mnist_pt2, *TRUST, "--source", image])
        expected = "is a 'digits' model (a digit classifier: use `jitvision digits`), not a YOLOv5 detector"
    else:
        proc = run_cli(["digits", "--model", yolov5n_pt2, *TRUST, image])
        expected = "is a 'detect' model, not a digit classifier"
    assert proc.returncode == 3 and expected in one_error_line(proc)


def test_export_refuses_torchscript_only_flags_and_bad_names(data_dir, tmp_path):
    weights = data_dir / "weights" / "yolov5n.pt"
    for extra, out, code, words in ((["--half"], "m.pt2", 2, "--half, --fixed and --method apply to TorchScript"),
                                    ([], "m.torchscript", 6, "must be named *.pt2")):
        proc = subprocess.run([sys.executable, "-m", "jitvision", "yolov5", "import", str(weights), "--format", "pt2",
                               *extra, "--out", str(tmp_path / out)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == code and words in proc.stderr, proc.stderr
        assert not (tmp_path / out).exists()


def cpu_has_bf16() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has neither AVX512-BF16 nor AMX: bf16 would be emulated")
def test_bf16_package_keeps_the_confident_boxes(pt2_cache, yolov5n_exports, data_dir, photos, run_cli):
    """Backbone and neck in bf16, head in fp32: boxes with conf >= 0.35 stay (same class, IoU >= 0.85, conf within
    0.03) against fp32 TorchScript."""
    package = export(["yolov5", "import", data_dir / "weights" / "yolov5n.pt", "--format", "pt2", "--dtype", "bf16"],
                     pt2_cache / "yolov5n-bf16.pt2")
    bf16, _ = native(run_cli, package, photos, *TRUST)
    fp32, _ = native(run_cli, yolov5n_exports["dynamic"], photos)
    for got, want in zip(bf16, fp32):
        confident = [d for d in want["detections"] if d["conf"] >= 0.35]
        assert confident
        for w in confident:
            same = [d for d in got["detections"] if d["cls"] == w["cls"]]
            best = max(same, key=lambda d: iou(d["xyxy"], w["xyxy"]))
            assert iou(best["xyxy"], w["xyxy"]) >= 0.85 and abs(best["conf"] - w["conf"]) <= 0.03, (best, w)
