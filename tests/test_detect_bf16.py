"""`--dtype bf16` in the C++ app: a detector's backbone and neck in bfloat16, its Detect head (convolutions and box
decoding) in float32; a digit classifier whole in bfloat16. Accuracy is measured against fp32 on the photos, and
every refusal (no head split in the file, a .pt2 compiled for another precision, a CPU or device that cannot) is one
line with its exit code."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jitvision.demo_report import score
from test_detect_parity import iou, native
from test_digits_live import make_video, run_json
from test_pt2 import mnist_pt2, pt2_cache  # noqa: F401 (fixtures)

REPO_ROOT = Path(__file__).resolve().parents[1]
MNIST = REPO_ROOT / "models" / "mnist.torchscript"

# The gate (docs/BENCHMARKS.md "bf16 on the CPU"): a borderline box may flip, a confident one must stay.
GATE_CONF = 0.35
GATE_IOU = 0.85
GATE_CONF_DIFF = 0.03


def cpu_has_bf16() -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512_bf16" in flags.split() or "amx_bf16" in flags.split()


needs_bf16 = pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has neither AVX512-BF16 nor AMX: the app "
                                                           "refuses bf16 (exit 4), tested below")


@pytest.fixture(scope="module")
def photos(data_dir):
    return [data_dir / "images" / "bus.jpg", data_dir / "images" / "zidane.jpg"]


def confident_box_gate(bf16, fp32):
    """Assert the gate; return the largest box corner difference (px) and confidence difference over the confident
    fp32 boxes and their bf16 matches."""
    worst_px, worst_conf, checked = 0.0, 0.0, 0
    for got, want in zip(bf16, fp32):
        assert got["source"] == want["source"]
        for w in (d for d in want["detections"] if d["conf"] >= GATE_CONF):
            same = [d for d in got["detections"] if d["cls"] == w["cls"]]
            assert same, f"{want['source']}: the {w['name']} at {w['xyxy']} (conf {w['conf']:.3f}) is gone in bf16"
            best = max(same, key=lambda d: iou(d["xyxy"], w["xyxy"]))
            assert iou(best["xyxy"], w["xyxy"]) >= GATE_IOU, (best, w)
            assert abs(best["conf"] - w["conf"]) <= GATE_CONF_DIFF, (best, w)
            worst_px = max(worst_px, max(abs(a - b) for a, b in zip(best["xyxy"], w["xyxy"])))
            worst_conf = max(worst_conf, abs(best["conf"] - w["conf"]))
            checked += 1
    assert checked >= 5  # bus.jpg and zidane.jpg hold 4 + 3 confident boxes in fp32
    return worst_px, worst_conf


@needs_bf16
def test_bf16_keeps_every_confident_box_of_the_photos(run_cli, yolov5n_exports, photos):
    model = yolov5n_exports["dynamic"]
    fp32, _ = native(run_cli, model, photos)
    bf16, stderr = native(run_cli, model, photos, "--dtype", "bf16")
    assert "on CPU BF16" in stderr
    worst_px, worst_conf = confident_box_gate(bf16, fp32)
    # bf16 really ran: the boxes moved (a silent fp32 run would give the fp32 numbers exactly)
    assert worst_px > 0 or worst_conf > 0
    print(f"bf16 vs fp32, confident boxes: corners within {worst_px:.2f} px, confidences within {worst_conf:.4f}")


@needs_bf16
def test_bf16_reads_a_digit_like_fp32(run_cli, data_dir):
    six = data_dir / "images" / "six.jpg"
    fp32 = run_cli(["digits", "--json", six])
    bf16 = run_cli(["digits", "--json", "--dtype", "bf16", six])
    assert fp32.returncode == 0 and bf16.returncode == 0, bf16.stderr
    want, got = json.loads(fp32.stdout), json.loads(bf16.stdout)
    assert got["digit"] == want["digit"] == 6
    assert abs(got["prob"] - want["prob"]) <= 0.02
    assert got["probs"] != want["probs"]  # computed in bf16, not silently in fp32


@needs_bf16
def test_bf16_mnist_accuracy_holds_on_the_held_out_digits(data_dir):
    """The classifier whole in bf16 (what `digits --dtype bf16` runs) against fp32 on the 2,000 held-out MNIST test
    digits (models/mnist.md: the other 8,000 trained it)."""
    from jitvision.mnist.data import load_heldout

    images, labels = load_heldout(data_dir / "mnist")
    norm = json.loads(_extra(MNIST)["jitvision.json"])["normalize"]
    x = (torch.from_numpy(images).float().unsqueeze(1) / norm["scale"] - norm["mean"][0]) / norm["std"][0]
    labels = torch.from_numpy(labels).long()
    with torch.inference_mode():
        fp32 = torch.jit.load(str(MNIST)).eval()(x).argmax(1)
        bf16 = torch.jit.load(str(MNIST)).eval().to(torch.bfloat16)(x.to(torch.bfloat16)).argmax(1)
    acc32 = (fp32 == labels).float().mean().item()
    acc16 = (bf16 == labels).float().mean().item()
    print(f"MNIST held-out: fp32 {acc32:.4f}, bf16 {acc16:.4f}, {(fp32 != bf16).sum().item()} answers differ")
    assert acc32 >= 0.99  # the normalisation above is the model's: fp32 gives the card's accuracy
    assert acc16 >= acc32 - 0.001


@needs_bf16
def test_live_digits_in_bf16_find_and_read_what_fp32_does(repo_root, run_cli, tmp_path):
    """`digits --source` with --dtype bf16: the bundled detector (body bf16, head fp32) and the reader (whole bf16)."""
    video, truth = make_video(repo_root, tmp_path, 8, seed=5)
    fp32, _ = run_json(run_cli, ["digits", "--source", video, "--json"])
    bf16, stderr = run_json(run_cli, ["digits", "--source", video, "--json", "--dtype", "bf16"])
    assert "on CPU BF16" in stderr
    want, got = score(fp32, truth), score(bf16, truth)
    assert want.digits == got.digits >= 40  # 8 frames, 6 digits each
    assert got.found >= want.found - 2 and got.reader_right >= want.reader_right - 2, (want.line(), got.line())


def _extra(path):
    extra = {"jitvision.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    return extra


def without_head_split(src: Path, out: Path) -> Path:
    """A copy of our export as exporters before "mixed_precision" wrote it."""
    extra = _extra(src)
    meta = json.loads(extra["jitvision.json"])
    meta.pop("mixed_precision")
    torch.jit.save(torch.jit.load(str(src)), str(out), _extra_files={"jitvision.json": json.dumps(meta)})
    return out


def one_line(proc):
    """The one error line (a trusted .pt2 adds a warning line before it)."""
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("jitvision: warning:")]
    assert len(lines) == 1 and lines[0].startswith("jitvision: error:"), proc.stderr
    return lines[0]


def test_a_file_without_the_head_split_is_refused_with_how_to_re_export(run_cli, yolov5n_exports, photos, tmp_path):
    old = without_head_split(yolov5n_exports["dynamic"], tmp_path / "old.torchscript")
    for model, head in ((yolov5n_exports["dynamic"], "model.24"), (old, "")):  # `info` says which can
        proc = run_cli(["info", "--json", model])
        assert proc.returncode == 0 and json.loads(proc.stdout)["contract"]["fp32_head"] == head, proc.stderr
    proc = run_cli(["detect", "--model", old, "--source", photos[0], "--dtype", "bf16", "--device", "cpu"])
    if not cpu_has_bf16():
        assert proc.returncode == 4 and "bfloat16 needs a CPU" in one_line(proc)
        return
    line = one_line(proc)
    assert proc.returncode == 3, proc.stderr
    assert "cannot run in bf16" in line and f"python -m jitvision yolov5 import {old} --out FILE" in line
    # ... and re-exporting it, as the line says, makes it run
    new = tmp_path / "new.torchscript"
    subprocess.run([sys.executable, "-m", "jitvision", "yolov5", "import", str(old), "--out", str(new)], check=True,
                   capture_output=True, timeout=600)
    proc = run_cli(["detect", "--model", new, "--source", photos[0], "--dtype", "bf16", "--json", "-"])
    assert proc.returncode == 0, proc.stderr
    assert any(d["name"] == "bus" for d in json.loads(proc.stdout)["detections"])


def test_a_pt2_runs_only_in_the_precision_it_was_compiled_for(run_cli, mnist_pt2, data_dir):  # noqa: F811
    six = data_dir / "images" / "six.jpg"
    proc = run_cli(["digits", "--model", mnist_pt2, "--trust-model", "--dtype", "bf16", six])
    assert proc.returncode == 2, proc.stderr
    assert "is a .pt2 package compiled for fp32" in one_line(proc) and "--dtype bf16" in one_line(proc)
    proc = run_cli(["digits", "--model", mnist_pt2, "--trust-model", "--dtype", "fp32", "--json", six])
    assert proc.returncode == 0 and json.loads(proc.stdout)["digit"] == 6, proc.stderr


def test_flag_conflicts_and_devices_that_cannot(run_cli, data_dir):
    six = data_dir / "images" / "six.jpg"
    cases = [(["detect", "--model", MNIST, "--source", six, "--half", "--dtype", "bf16"], 2, "--half is --dtype fp16"),
             (["digits", "--dtype", "fp16", "--device", "cpu", six], 4, "--dtype fp16 needs a CUDA device"),
             (["digits", "--dtype", "int8", six], 2, "--dtype")]
    for args, code, words in cases:
        proc = run_cli(args)
        assert proc.returncode == code and words in proc.stderr, (args, proc.stderr)


def test_bench_times_the_mixed_form(run_cli, yolov5n_exports):
    proc = run_cli(["bench", "--model", yolov5n_exports["dynamic"], "--dtype", "bf16", "--device", "cpu",
                    "--shape", "1x3x128x160", "--warmup", "1", "--iters", "2", "--json"])
    if not cpu_has_bf16():
        assert proc.returncode == 4 and "bfloat16 needs a CPU" in proc.stderr
        return
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["dtype"] == "bfloat16" and out["fp32_head"] == "model.24"
    assert out["forward"]["median_ms"] > 0
