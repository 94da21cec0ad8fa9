"""`jitvision detect` (C++) against the Python reference detector: same boxes, same confidences.

Tolerances (from issue [C]): same classes and count, boxes within 1 px, confidence within 0.002.
"""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

BOX_TOL_PX = 1.0
CONF_TOL = 0.002


def reference(repo_root, model, sources, *extra):
    proc = subprocess.run([sys.executable, "-m", "jitvision", "yolov5", "detect", "--model", str(model),
                           "--source", *map(str, sources), "--json", *extra], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def native(run_cli, model, sources, *extra):
    args = ["detect", "--model", model, "--json", "-"]
    for s in sources:
        args += ["--source", s]
    proc = run_cli([*args, *extra])
    assert proc.returncode == 0, proc.stderr
    # Sources are read at once, each in its own order: rows in --source order, then frame order.
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    return sorted(rows, key=lambda r: (r["source_index"], r["frame"])), proc.stderr


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def assert_same_frames(cpp, py):
    # The app reads its sources at once (each in its own order): compare frame by frame, by source and index.
    cpp, py = (sorted(rs, key=lambda r: (r["source"], r["frame"])) for rs in (cpp, py))
    assert len(cpp) == len(py)
    for c, p in zip(cpp, py):
        assert (c["source"], c["frame"], c["shape"]) == (p["source"], p["frame"], p["shape"])
        assert c["source_index"] == p["source_index"]
        assert abs(c.get("position_ms", -1.0) - p.get("position_ms", -1.0)) < 1.0, (c, p)  # video frames only
        assert sorted(d["cls"] for d in c["detections"]) == sorted(d["cls"] for d in p["detections"]), c["source"]
        unmatched = list(c["detections"])
        for want in p["detections"]:
            best = max((d for d in unmatched if d["cls"] == want["cls"]), key=lambda d: iou(d["xyxy"], want["xyxy"]))
            unmatched.remove(best)
            assert best["name"] == want["name"]
            assert np.allclose(best["xyxy"], want["xyxy"], atol=BOX_TOL_PX), (best, want)
            assert abs(best["conf"] - want["conf"]) <= CONF_TOL, (best, want)


@pytest.fixture(scope="module")
def photos(data_dir):
    return [data_dir / "images" / "bus.jpg", data_dir / "images" / "zidane.jpg"]


@pytest.mark.parametrize("kind", ["dynamic", "fixed"])
def test_photos_match_the_python_reference(kind, yolov5n_exports, photos, run_cli, repo_root):
    model = yolov5n_exports[kind]
    cpp, _ = native(run_cli, model, photos)
    py = reference(repo_root, model, photos)
    assert_same_frames(cpp, py)
    bus, zidane = sorted(cpp, key=lambda r: r["source"])  # both sources are read at once: either may come first
    assert {d["name"] for d in bus["detections"]} >= {"person", "bus"}
    assert sum(d["name"] == "person" for d in zidane["detections"]) == 2


def test_options_match_the_reference(yolov5n_exports, photos, run_cli, repo_root):
    model = yolov5n_exports["dynamic"]
    opts = ["--conf", "0.1", "--iou", "0.6", "--img", "320", "--classes", "0,27", "--max-det", "5"]
    cpp, _ = native(run_cli, model, photos, *opts)
    py = reference(repo_root, model, photos, "--conf", "0.1", "--iou", "0.6", "--img", "320",
                   "--classes", "0", "27", "--max-det", "5")
    assert_same_frames(cpp, py)
    assert all(d["cls"] in (0, 27) for r in cpp for d in r["detections"])
    assert all(len(r["detections"]) <= 5 for r in cpp)


def pan_video(data_dir, path, frames):
    photo = cv2.imread(str(data_dir / "images" / "zidane.jpg"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 360))
    dx = min(40, 340 // max(frames - 1, 1))  # every crop stays inside the 1280-wide photo
    for i in range(frames):
        writer.write(np.ascontiguousarray(photo[100 + 10 * i:460 + 10 * i, 300 + dx * i:940 + dx * i]))
    writer.release()
    return path


def test_video_frames_match_the_reference(yolov5n_exports, data_dir, run_cli, repo_root, tmp_path):
    video = pan_video(data_dir, tmp_path / "pan.avi", 6)
    model = yolov5n_exports["dynamic"]
    cpp, err = native(run_cli, model, [video])
    assert [r["frame"] for r in cpp] == list(range(6))
    assert_same_frames(cpp, reference(repo_root, model, [video]))
    assert "6 frames" in err


@pytest.mark.parametrize("threads,workers", [(2, 2), (3, 3)])
def test_parallel_workers_keep_frame_order_and_results(yolov5n_exports, data_dir, run_cli, tmp_path, threads, workers):
    """Several frames in the model at once finish out of order; the output must still be in capture order, with
    the results one worker at all threads gives (up to float summation order: the parity tolerances)."""
    video = pan_video(data_dir, tmp_path / "pan.avi", 10)
    model = yolov5n_exports["dynamic"]
    one, _ = native(run_cli, model, [video], "--workers", "1", "--threads", str(threads))
    many, err = native(run_cli, model, [video], "--workers", str(workers), "--threads", str(threads))
    assert f"{workers} workers x 1 thread" in err
    assert [r["frame"] for r in many] == list(range(10))
    assert_same_frames(many, one)


def test_more_workers_than_threads_is_clamped(yolov5n_exports, photos, run_cli):
    out, err = native(run_cli, yolov5n_exports["dynamic"], photos[:1], "--workers", "4", "--threads", "2")
    assert len(out) == 1 and "--workers 4 exceeds the 2 CPU threads; using 2" in err


def test_info_reads_the_contract(yolov5n_exports, run_cli):
    for kind, dynamic in (("dynamic", True), ("fixed", False)):
        proc = run_cli(["info", "--json", yolov5n_exports[kind]])
        assert proc.returncode == 0, proc.stderr
        info = json.loads(proc.stdout)
        assert info["task"] == "detect"
        assert info["contract"]["dynamic"] is dynamic
        assert info["contract"]["classes"] == 80
        assert info["contract"]["letterbox"] == ("rect" if dynamic else "square")


def test_img_not_a_stride_multiple_is_rounded_up(yolov5n_exports, photos, run_cli):
    proc = run_cli(["detect", "--model", yolov5n_exports["dynamic"], "--source", photos[1], "--img", "650",
                    "--json", "-"])
    assert proc.returncode == 0, proc.stderr
    assert "rounded up to 672" in proc.stderr
    assert len(proc.stdout.splitlines()) == 1


def test_digit_model_is_not_a_detector(repo_root, run_cli, tmp_path):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    proc = run_cli(["detect", "--model", repo_root / "models" / "mnist.torchscript", "--source", image])
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "digit classifier" in lines[0] and lines[0].startswith("jitvision: error:")


@pytest.fixture(scope="module")
def official_style(yolov5n_exports, tmp_path_factory):
    """Our fixed export re-saved the way ultralytics ships TorchScript: config.txt only, no jitvision.json."""
    import torch

    extra = {"config.txt": ""}
    module = torch.jit.load(str(yolov5n_exports["fixed"]), _extra_files=extra)
    path = tmp_path_factory.mktemp("official") / "yolov5n.torchscript"
    torch.jit.save(module, str(path), _extra_files={"config.txt": extra["config.txt"]})
    return path


def test_official_style_file_is_read_from_config_txt(official_style, photos, run_cli, repo_root):
    info = json.loads(run_cli(["info", "--json", official_style]).stdout)
    assert "metadata" not in info and info["contract"]["origin"] == "ultralytics"
    # config.txt says 640x640, but our trace computes its grid from the input: the probe finds it dynamic
    assert info["contract"]["dynamic"] and info["contract"]["letterbox"] == "rect"
    cpp, _ = native(run_cli, official_style, photos)
    assert_same_frames(cpp, reference(repo_root, official_style, photos))
