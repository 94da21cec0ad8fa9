"""Smoke tests of the two bench commands (`jitvision bench`, `python -m jitvision bench`): tiny iteration counts,
valid JSON with every field the report reads. Figures are never asserted: they are meaningless on a shared CI box."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2
import pytest

from _support import REPO_ROOT, MjpegServer, _exporter_fingerprint, moving_frames, textured_photo
from jitvision.bench import MAX_REASON, NOISY_SPREAD, noise_check, short_reason, spread

MNIST = REPO_ROOT / "models" / "mnist.torchscript"
STATS = {"median_ms", "p90_ms", "min_ms", "n"}
CPP_FIELDS = {"model", "task", "device", "dtype", "threads", "shape", "load_ms", "first_call_ms", "warmup", "warmup_ms",
              "jit_executor", "forward", "peak_rss_mb"}
CPP_VIDEO = {"file", "frames", "wall_s", "first_result_s", "fps", "per_frame_ms", "per_frame_over_forward", "workers",
             "threads_per_worker", "stages"}
CPP_STAGES = {"capture", "preprocess", "inference", "postprocess", "output"}
PY_FIELDS = {"model", "task", "device", "dtype", "threads", "shape", "warmup", "iters", "jit_executor", "isolated",
             "file_form", "variants", "peak_rss_mb", "versions", "noise"}
VARIANTS = {"eager", "traced", "traced+freeze", "traced+freeze+ofi", "scripted", "scripted+freeze",
            "scripted+freeze+ofi"}
VARIANT_FIELDS = {"source", "load_ms", "first_call_ms", "warmup_ms", "forward", "skipped"}
PY_VIDEO = {"file", "frames", "wall_s", "load_ms", "first_result_s", "fps", "per_frame_ms", "stages"}
FRAMES = 5
TINY = ["--warmup", "1", "--iters", "2", "--threads", "1", "--json"]


def python_bench(*args) -> dict:
    proc = subprocess.run([sys.executable, "-m", "jitvision", "bench", *map(str, args)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def cpp_bench(run_cli, *args) -> dict:
    proc = run_cli(["bench", *args])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def check_cpp(out: dict) -> None:
    assert CPP_FIELDS <= out.keys()
    assert STATS <= out["forward"].keys() and out["forward"]["n"] == 2
    assert len(out["warmup_ms"]) == out["warmup"] and all(ms > 0 for ms in out["warmup_ms"])


def check_variant(entry: dict, measured: bool) -> None:
    assert VARIANT_FIELDS <= entry.keys()
    if measured:
        assert entry["skipped"] is None and entry["forward"]["n"] == 2 and len(entry["warmup_ms"]) == 1
        assert entry["first_call_ms"] > 0 and entry["load_ms"] >= 0
    else:
        assert entry["skipped"] and entry["forward"]["n"] == 0


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> dict:
    """A random-init YOLOv5n saved as a training checkpoint (for the eager variant) and exported from it at 160,
    Detect zeroed so that nothing passes NMS. Cached under build/test-cache, keyed by the exporter's source."""
    import torch

    from jitvision.yolov5.model import Yolov5, yolov5_architecture
    from jitvision.yolov5.train import CHECKPOINT_FORMAT, export_checkpoint

    cache = REPO_ROOT / "build" / "test-cache" / f"bench-yolov5n-{_exporter_fingerprint()}"
    weights, model = cache / "random.pt", cache / "random-160.torchscript"
    if not model.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        net = Yolov5(yolov5_architecture("n", nc=80))
        for conv in net.detect.m:
            torch.nn.init.zeros_(conv.weight)
            torch.nn.init.constant_(conv.bias, -10.0)
        torch.save({"format": CHECKPOINT_FORMAT, "arch": net.arch, "names": net.names, "model": net.state_dict(),
                    "ema": None}, weights)
        export_checkpoint(str(weights), str(model) + ".partial", img_size=160)
        os.replace(str(model) + ".partial", model)
    video = tmp_path_factory.mktemp("bench") / "tiny.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (320, 240))
    for frame in moving_frames(textured_photo(), FRAMES):
        writer.write(frame)
    writer.release()
    return {"weights": weights, "model": model, "video": video}


def test_cpp_bench_mnist_json(run_cli):
    out = cpp_bench(run_cli, "--model", MNIST, "--shape", "3x1x28x28", *TINY)
    check_cpp(out)
    assert out["task"] == "digits" and out["shape"] == [3, 1, 28, 28] and "video" not in out


@pytest.mark.parametrize("executor", ["legacy", "unoptimized"])
def test_cpp_bench_graph_executors(run_cli, executor):
    out = cpp_bench(run_cli, "--model", MNIST, "--jit-executor", executor, *TINY)
    check_cpp(out)
    assert out["jit_executor"] == executor


def test_cpp_bench_unknown_executor_is_a_usage_error(run_cli):
    proc = run_cli(["bench", "--model", MNIST, "--jit-executor", "fast"])
    assert proc.returncode == 2 and "--jit-executor" in proc.stderr


def test_cpp_bench_pipeline_with_two_workers(run_cli, detector):
    out = cpp_bench(run_cli, "--model", detector["model"], "--video", detector["video"], "--warmup", "1", "--iters",
                    "2", "--threads", "2", "--workers", "2", "--json")
    assert (out["video"]["workers"], out["video"]["threads_per_worker"]) == (2, 1)
    assert out["video"]["frames"] == FRAMES and out["video"]["stages"]["inference"]["n"] == FRAMES


def test_python_bench_mnist_every_variant():
    out = python_bench("--model", MNIST, "--shape", "3x1x28x28", *TINY)
    assert PY_FIELDS <= out.keys()
    assert out["task"] == "digits" and out["shape"] == [3, 1, 28, 28] and out["file_form"] == "traced"
    assert set(out["variants"]) == VARIANTS
    for entry in out["variants"].values():  # DigitNet is cheap to rebuild and scriptable: nothing is skipped
        check_variant(entry, measured=True)


def test_python_bench_isolated_variant():
    out = python_bench("--model", MNIST, "--variants", "traced+freeze+ofi", "--isolate", "--jit-executor", "legacy",
                       *TINY)
    assert out["isolated"] and out["jit_executor"] == "legacy" and list(out["variants"]) == ["traced+freeze+ofi"]
    check_variant(out["variants"]["traced+freeze+ofi"], measured=True)


def test_both_benches_on_a_detector_and_video(run_cli, detector):
    cpp = cpp_bench(run_cli, "--model", detector["model"], "--video", detector["video"], *TINY)
    check_cpp(cpp)
    assert CPP_VIDEO <= cpp["video"].keys() and cpp["video"]["frames"] == FRAMES
    assert (cpp["video"]["workers"], cpp["video"]["threads_per_worker"]) == (1, 1)  # TINY runs on one thread
    assert all(STATS <= cpp["video"]["stages"][s].keys() for s in CPP_STAGES)

    py = python_bench("--model", detector["model"], "--weights", detector["weights"], "--video", detector["video"],
                      "--variants", "eager,traced,scripted", *TINY)
    assert PY_FIELDS <= py.keys() and PY_VIDEO <= py["video"].keys()
    assert py["shape"] == cpp["shape"] == [1, 3, 128, 160]  # 320x240 letterboxed (rect) at 160
    assert py["video"]["frames"] == FRAMES
    assert all(STATS <= s.keys() for s in py["video"]["stages"].values())
    check_variant(py["variants"]["eager"], measured=True)
    check_variant(py["variants"]["traced"], measured=True)
    check_variant(py["variants"]["scripted"], measured=True)  # our YOLOv5 is scriptable as well


def test_python_bench_bad_shape_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "jitvision", "bench", "--model", str(MNIST), "--shape", "1x28x28"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "BxCxHxW" in proc.stderr


def test_python_bench_skipped_rows_say_why_in_one_short_line():
    out = python_bench("--model", MNIST, "--variants", "traced,traced+freeze", "--jit-executor", "unoptimized", *TINY)
    check_variant(out["variants"]["traced"], measured=True)
    entry = out["variants"]["traced+freeze"]
    check_variant(entry, measured=False)
    assert entry["skipped"].startswith("frozen modules do not run with --jit-executor unoptimized")
    assert "\n" not in entry["skipped"] and len(entry["skipped"]) <= MAX_REASON


def test_short_reason_drops_torchscript_internals():
    exc = RuntimeError("The following operation failed in the TorchScript interpreter.\n"
                       "Traceback of TorchScript code:\n"
                       "Couldn't find method: 'forward' on class: '__torch__.torch.nn.modules.dropout."
                       "___torch_mangle_33.Dropout (of Python compilation unit at: 0x55cf694c4850)'\n  File ...")
    assert short_reason(exc) == "Couldn't find method: 'forward' on class: 'torch.nn.modules.dropout.Dropout'"
    long = short_reason(ValueError("x" * 500))
    assert len(long) == MAX_REASON and long.endswith("...")
    assert short_reason(KeyError()) == "KeyError"  # no message: the exception's type


def test_noise_check_on_synthetic_timings():
    steady = [10.0] * 27 + [10.5, 11.0, 30.0]  # one outlier above p90 does not count
    noisy = [10.0] * 15 + [14.0] * 15  # p90 14 vs median 12: 17% ...
    noisier = [10.0] * 15 + [20.0] * 15  # ... p90 20 vs median 15: 33%
    assert spread(steady) == 0.0 and spread([]) is None
    assert spread(noisy) < NOISY_SPREAD < spread(noisier)
    calm = noise_check({"eager": spread(steady), "traced": spread(noisy), "scripted": None}, 0.5, 1.9, 2)
    assert calm["warning"] is None
    jittery = noise_check({"eager": spread(steady), "traced": spread(noisier)}, 0.5, 0.5, 2)
    assert jittery["warning"] == ("the machine is too noisy for these figures "
                                  "(p90 more than 25% above the median in traced)")
    busy = noise_check({"eager": spread(steady)}, 0.5, 2.5, 2)
    assert busy["warning"] == "the machine is too noisy for these figures (load average 2.5 on 2 CPU cores)"


def test_report_keeps_the_hand_measured_sections(tmp_path):
    from jitvision.benchreport import HAND_MARKER, hand_measured_tail

    out = tmp_path / "BENCHMARKS.md"
    assert hand_measured_tail(out) == ""  # no report yet
    out.write_text("# generated\n| a |\n")
    assert hand_measured_tail(out) == ""  # a report without hand-measured sections
    out.write_text(f"# generated\n| a |\n{HAND_MARKER}\n## Start-up\n460 MB -> 190 MB\n\n")
    assert hand_measured_tail(out) == f"\n{HAND_MARKER}\n## Start-up\n460 MB -> 190 MB\n"


def cpu_has_bf16() -> bool:
    flags = open("/proc/cpuinfo").read().split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def test_cpp_bench_bf16_forward_or_refusal(run_cli):
    proc = run_cli(["bench", "--model", MNIST, "--dtype", "bf16", "--device", "cpu", *TINY])
    if cpu_has_bf16():
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        check_cpp(out)
        assert out["dtype"] == "bfloat16" and out["fp32_head"] == ""  # a classifier runs whole in bf16
    else:  # CPUs without AVX512-BF16/AMX: one line, exit 4 (device)
        assert proc.returncode == 4 and "bfloat16 needs a CPU with AVX512-BF16 or AMX" in proc.stderr
    proc = run_cli(["bench", "--model", MNIST, "--dtype", "bf16", "--half", *TINY])
    assert proc.returncode == 2 and "--half is --dtype fp16" in proc.stderr


def test_cpp_bench_reports_the_inference_form(run_cli):
    out = cpp_bench(run_cli, "--model", MNIST, "--layout", "contiguous", "--no-freeze", *TINY)
    assert (out["layout"], out["frozen"], out["onednn_fusion"]) == ("contiguous", False, False)
    out = cpp_bench(run_cli, "--model", MNIST, *TINY)
    assert (out["layout"], out["frozen"]) == ("channels_last", True)


STREAMS = 3
STREAM_RUN = {"batch_asked", "batch", "frames", "wall_s", "fps", "workers", "threads_per_worker", "stages",
              "per_stream", "per_stream_fps"}


def check_streams_run(run: dict, batch_asked: int, batch: int) -> None:
    assert STREAM_RUN <= run.keys()
    assert (run["batch_asked"], run["batch"]) == (batch_asked, batch)
    assert run["frames"] == STREAMS * FRAMES and run["fps"] > 0  # every frame of every copy, none dropped
    assert {"capture", "preprocess", "inference", "postprocess", "output"} <= run["stages"].keys()
    assert [s["processed"] for s in run["per_stream"]] == [FRAMES] * STREAMS
    assert all(s["end"] == "ended" and s["dropped"] == 0 and s["fps"] > 0 for s in run["per_stream"])
    rates = [s["fps"] for s in run["per_stream"]]
    r = run["per_stream_fps"]
    assert (r["min"], r["max"]) == (min(rates), max(rates))
    assert r["mean"] == pytest.approx(sum(rates) / STREAMS)
    assert r["spread"] == pytest.approx(max(r["mean"] - r["min"], r["max"] - r["mean"]) / r["mean"])


def test_cpp_bench_streams_batched_and_not(run_cli, detector):
    out = cpp_bench(run_cli, "--model", detector["model"], "--video", detector["video"], "--streams", STREAMS,
                    "--batch", STREAMS, *TINY)
    check_cpp(out)
    assert "video" not in out  # --streams replaces the single pipeline run
    s = out["streams"]
    assert (s["streams"], s["source"], s["live"]) == (STREAMS, str(detector["video"]), False)
    check_streams_run(s["batched"], STREAMS, STREAMS)
    check_streams_run(s["unbatched"], 1, 1)
    assert s["speedup"] == pytest.approx(s["batched"]["fps"] / s["unbatched"]["fps"])


def test_cpp_bench_streams_text(run_cli, detector):
    proc = run_cli(["bench", "--model", detector["model"], "--video", detector["video"], "--streams", "2",
                    "--warmup", "1", "--iters", "2", "--threads", "1"])
    assert proc.returncode == 0, proc.stderr
    assert f"2 concurrent copies of {detector['video']} through the detect pipeline:" in proc.stdout
    assert "  --batch 1 (largest batch 1): " + str(2 * FRAMES) + " frames" in proc.stdout
    assert "total throughput batched / --batch 1: " in proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--streams", "2"], "--streams needs --video FILE or --source URL"),
    (["--streams", "2", "--source", "http://127.0.0.1:9/x.mjpg"], "--source is live and never ends: give --frames N"),
    (["--video", "V", "--streams", "2", "--source", "http://127.0.0.1:9/x.mjpg", "--frames", "3"],
     "--video excludes --source"),
    (["--source", "http://127.0.0.1:9/x.mjpg"], "--source requires --streams"),
    (["--video", "V", "--frames", "3"], "--frames requires --streams"),
    (["--video", "V", "--batch", "2"], "--batch requires --streams"),
    (["--video", "V", "--streams", "0"], "--streams"),
    (["--video", "V", "--streams", "2", "--batch", "1"], "--batch 1 is the baseline every --streams run measures"),
])
def test_cpp_bench_streams_usage_errors(run_cli, detector, args, message):
    args = [str(detector["video"]) if a == "V" else a for a in args]
    proc = run_cli(["bench", "--model", detector["model"], *args])
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cpp_bench_streams_from_one_live_source(run_cli, detector):
    """Two connections to one loopback MJPEG server, each measured over a few frames."""
    frames = moving_frames(textured_photo(), 8)
    with MjpegServer(lambda i: frames[i % len(frames)], fps=30.0) as server:
        out = cpp_bench(run_cli, "--model", detector["model"], "--source", server.url, "--streams", "2", "--frames",
                        "4", *TINY)
        connections = server.connections
    s = out["streams"]
    assert (s["streams"], s["source"], s["live"]) == (2, server.url, True)
    for run in (s["batched"], s["unbatched"]):  # live: 4 frames reach the model; the newest-frame policy may drop more
        assert [p["processed"] for p in run["per_stream"]] == [4, 4]
        assert all(p["processed"] + p["dropped"] == p["read"] for p in run["per_stream"])
        assert run["frames"] == sum(p["processed"] for p in run["per_stream"])
    assert connections >= 1 + 2 * 2  # the shape probe, then two streams in each run
    assert out["shape"] == [1, 3, 128, 160]  # the stream's 320x240 frames letterboxed (rect) at 160
