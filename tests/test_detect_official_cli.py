"""`jitvision detect` with the official detector's habits: its flag spellings, its run folder (--project, --name,
--exist-ok, --nosave), its output files (--save-txt, --save-conf, --save-crop, --save-csv), --vid-stride,
--agnostic-nms, the drawing flags, and its per-frame console lines. Runs on the bundled digit detector and on
scenes that `python -m jitvision data digits` draws in fonts (no data set needed)."""
from __future__ import annotations

import csv
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from _support import REPO_ROOT, read_json_lines

MODEL = REPO_ROOT / "models" / "digits_yolov5n.torchscript"
BASE = ["--threads", "1", "--device", "cpu"]
LINE = re.compile(r"^image (\d+)/(\d+) (.+): (\d+)x(\d+) (.*?)(\d+\.\d)ms$")
VIDEO_FRAMES = 7


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict:
    """Three PNG scenes with digits (lossless, so drawing can be compared pixel by pixel) and a video of them."""
    root = tmp_path_factory.mktemp("scenes")
    subprocess.run([sys.executable, "-m", "jitvision", "data", "digits", "--out", str(root / "set"), "--n", "3",
                    "--split", "val", "--font-fraction", "1", "--img", "256"], check=True, capture_output=True)
    images = root / "images"
    images.mkdir()
    frames = []
    for jpg in sorted((root / "set" / "images" / "val").glob("*.jpg")):
        frame = cv2.imread(str(jpg))
        cv2.imwrite(str(images / (jpg.stem + ".png")), frame)
        frames.append(frame)
    video = root / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (256, 256))
    for i in range(VIDEO_FRAMES):
        writer.write(frames[i % len(frames)])
    writer.release()
    return {"images": images, "video": video, "pngs": sorted(images.glob("*.png"))}


def detect(run_cli, cwd, *args):
    return run_cli(["detect", *BASE, *map(str, args)], cwd=cwd)


def timeless(rows: list) -> list:
    """JSON rows without their capture time, which differs from run to run."""
    return [{k: v for k, v in row.items() if k != "timestamp"} for row in rows]


def json_run(run_cli, tmp_path, *args) -> list:
    out = tmp_path / f"run{len(list(tmp_path.glob('run*.jsonl')))}.jsonl"
    proc = detect(run_cli, tmp_path, *args, "--json", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    return timeless(read_json_lines(out))


def test_official_spellings_are_aliases(run_cli, scenes, tmp_path):
    ours = json_run(run_cli, tmp_path, "--model", MODEL, "--source", scenes["images"], "--conf", "0.4", "--iou",
                    "0.3", "--img", "224")
    theirs = json_run(run_cli, tmp_path, "--weights", MODEL, "--source", scenes["images"], "--conf-thres", "0.4",
                      "--iou-thres", "0.3", "--imgsz", "224")
    assert ours == theirs and sum(len(r["detections"]) for r in ours) > 3


def test_imgsz_with_two_values_uses_the_larger_with_a_warning(run_cli, scenes, tmp_path):
    out = tmp_path / "two.jsonl"
    proc = detect(run_cli, tmp_path, "--weights", MODEL, "--source", scenes["pngs"][0], "--imgsz", "160", "224",
                  "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert ("jitvision: warning: --imgsz 160 224: the letterbox fits the longest side and keeps the frame's aspect "
            "ratio; using --img 224") in proc.stderr
    assert timeless(read_json_lines(out)) == json_run(run_cli, tmp_path, "--model", MODEL, "--source",
                                                      scenes["pngs"][0], "--img", "224")
    assert re.search(r"^image 1/1 .*: 224x224 ", proc.stderr, re.M)


@pytest.fixture(scope="module")
def named_model(tmp_path_factory) -> Path:
    """A random yolov5n with the class names cat, dog, fox: many boxes of every class."""
    import torch

    from jitvision.yolov5.export import export_torchscript
    from jitvision.yolov5.model import Yolov5, yolov5_architecture

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("named") / "pets.torchscript"
    export_torchscript(Yolov5(yolov5_architecture("n", 3), names=["cat", "dog", "fox"]).eval(), str(path),
                       img_size=64)
    return path


def test_classes_by_name_or_index(run_cli, scenes, named_model, tmp_path):
    by_name = json_run(run_cli, tmp_path, "--model", named_model, "--source", scenes["pngs"][0], "--img", "64",
                       "--classes", "dog", "fox")
    by_index = json_run(run_cli, tmp_path, "--model", named_model, "--source", scenes["pngs"][0], "--img", "64",
                        "--classes", "1,2")
    found = {d["name"] for d in by_name[0]["detections"]}
    assert by_name == by_index and found and found <= {"dog", "fox"}
    for bad, message in (("cow", "--classes cow: the model has no class of that name (its classes: cat, dog, fox)"),
                         ("3", "--classes 3: the model has 3 classes (0..2)")):
        proc = detect(run_cli, tmp_path, "--model", named_model, "--source", scenes["pngs"][0], "--classes", bad)
        assert proc.returncode == 2 and proc.stderr == f"jitvision: error: {message}\n"


def test_device_spellings(run_cli, scenes, tmp_path):
    import torch

    proc = detect(run_cli, tmp_path, "--model", MODEL, "--source", scenes["pngs"][0], "--device", "gpu")
    assert proc.returncode == 2
    assert proc.stderr.startswith("jitvision: error: --device: --device gpu: expected auto, cpu, cuda, cuda:N or N")
    assert proc.stderr.rstrip().endswith("(see jitvision detect --help)")
    proc = run_cli(["detect", "--model", MODEL, "--source", scenes["pngs"][0], "--device", "cuda:7", "--quiet"])
    if torch.cuda.device_count() > 7:
        pytest.skip("this machine has a CUDA device 7")
    assert proc.returncode == 4 and proc.stderr.count("\n") == 1, proc.stderr


def test_save_txt_files_match_the_json_results(run_cli, scenes, tmp_path):
    out = tmp_path / "r.jsonl"
    proc = detect(run_cli, tmp_path, "--model", MODEL, "--source", scenes["images"], "--source", scenes["video"],
                  "--save-txt", "--save-conf", "--json", out)
    assert proc.returncode == 0, proc.stderr
    labels = tmp_path / "runs" / "detect" / "exp" / "labels"
    expected = set()
    for row in read_json_lines(out):
        h, w = row["shape"]
        stem = Path(row["source"]).stem
        name = f"{stem}.txt" if row["source"].endswith(".png") else f"{stem}_{row['frame']:06d}.txt"
        if not row["detections"]:
            continue
        expected.add(name)
        lines = [[float(v) for v in line.split()] for line in (labels / name).read_text().splitlines()]
        assert len(lines) == len(row["detections"])
        for (cls, cx, cy, bw, bh, conf), d in zip(lines, row["detections"]):
            x1, y1, x2, y2 = d["xyxy"]
            assert cls == d["cls"]
            assert np.allclose([cx, cy, bw, bh, conf], [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w,
                                                        (y2 - y1) / h, d["conf"]], atol=2e-5)
    assert {p.name for p in labels.iterdir()} == expected
    assert len([n for n in expected if n.startswith("clip_")]) == VIDEO_FRAMES
    assert "jitvision: results saved to runs/detect/exp" in proc.stderr


def test_save_txt_without_save_conf_has_five_columns(run_cli, scenes, tmp_path):
    assert detect(run_cli, tmp_path, "--model", MODEL, "--source", scenes["pngs"][0], "--save-txt").returncode == 0
    (label,) = (tmp_path / "runs" / "detect" / "exp" / "labels").iterdir()
    assert {len(line.split()) for line in label.read_text().splitlines()} == {5}


def test_save_crop_and_save_csv(run_cli, scenes, tmp_path):
    rows = json_run(run_cli, tmp_path, "--model", MODEL, "--source", scenes["pngs"][0], "--save-crop", "--save-csv")
    run = tmp_path / "runs" / "detect" / "exp"
    (row,) = rows
    frame = cv2.imread(str(scenes["pngs"][0]))
    for i, d in enumerate(row["detections"]):
        crop = cv2.imread(str(run / "crops" / d["name"] / f"{scenes['pngs'][0].stem}_{i}.jpg"))
        x1, y1, x2, y2 = d["xyxy"]
        assert crop.shape[:2] == (int(np.ceil(y2)) - int(np.floor(y1)), int(np.ceil(x2)) - int(np.floor(x1)))
        want = frame[int(np.floor(y1)):int(np.ceil(y2)), int(np.floor(x1)):int(np.ceil(x2))]
        assert np.abs(crop.astype(int) - want).mean() < 8  # JPEG; cut from the frame before any drawing
    with open(run / "predictions.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [(int(r["class"]), r["name"]) for r in table] == [(d["cls"], d["name"]) for d in row["detections"]]
    assert np.allclose([[float(r[k]) for k in ("x1", "y1", "x2", "y2", "confidence")] for r in table],
                       [[*d["xyxy"], d["conf"]] for d in row["detections"]], atol=1e-3)
    assert {r["source"] for r in table} == {str(scenes["pngs"][0])}


def test_run_folders_are_numbered_unless_exist_ok(run_cli, scenes, tmp_path):
    source = scenes["pngs"][0]
    for _ in range(2):
        assert detect(run_cli, tmp_path, "--model", MODEL, "--source", source, "--name", "pets").returncode == 0
    proc = detect(run_cli, tmp_path, "--model", MODEL, "--source", source, "--name", "pets", "--exist-ok",
                  "--nosave", "--save-txt")
    assert proc.returncode == 0, proc.stderr
    project = tmp_path / "runs" / "detect"
    assert sorted(p.name for p in project.iterdir()) == ["pets", "pets2"]
    assert sorted(p.name for p in (project / "pets").iterdir()) == ["labels", source.name]
    assert [p.name for p in (project / "pets2").iterdir()] == [source.name]  # annotated: saved by default
    other = tmp_path / "elsewhere"
    assert detect(run_cli, tmp_path, "--model", MODEL, "--source", source, "--project", other, "--nosave",
                  "--save-csv").returncode == 0
    assert [p.name for p in (other / "exp").iterdir()] == ["predictions.csv"]


def test_no_run_folder_unless_asked(run_cli, scenes, tmp_path):
    assert detect(run_cli, tmp_path, "--model", MODEL, "--source", scenes["pngs"][0]).returncode == 0
    assert list(tmp_path.iterdir()) == []


def test_vid_stride(run_cli, scenes, tmp_path):
    rows = json_run(run_cli, tmp_path, "--model", MODEL, "--source", scenes["video"], "--vid-stride", "3")
    assert [r["frame"] for r in rows] == [0, 3, 6]


def reference(python_exe, *args) -> list:
    proc = subprocess.run([python_exe, "-m", "jitvision", "yolov5", "detect", "--json", *map(str, args)],
                          capture_output=True, text=True, timeout=300, check=True)
    return timeless([json.loads(line) for line in proc.stdout.splitlines()])


def test_agnostic_nms_matches_the_reference(run_cli, scenes, tmp_path, python_exe):
    args = ["--source", scenes["pngs"][0], "--conf", "0.001", "--iou", "0.1"]
    aware = json_run(run_cli, tmp_path, "--model", MODEL, *args)[0]["detections"]
    agnostic = json_run(run_cli, tmp_path, "--model", MODEL, *args, "--agnostic-nms")[0]["detections"]
    assert len(agnostic) < len(aware)
    assert len({d["cls"] for d in agnostic}) > 1
    want = reference(python_exe, "--weights", MODEL, "--conf-thres", "0.001", "--iou-thres", "0.1", "--agnostic-nms",
                     "--source", scenes["pngs"][0])[0]["detections"]
    assert [d["cls"] for d in agnostic] == [d["cls"] for d in want]
    assert np.allclose([d["xyxy"] for d in agnostic], [d["xyxy"] for d in want], atol=1e-2)


def changed_pixels(run_cli, tmp_path, source, *args) -> int:
    folder = tmp_path / f"drawn{len(list(tmp_path.glob('drawn*')))}"
    assert detect(run_cli, tmp_path, "--model", MODEL, "--source", source, "--save-dir", folder,
                  *args).returncode == 0
    return int((cv2.imread(str(folder / source.name)) != cv2.imread(str(source))).any(axis=2).sum())


def test_drawing_flags(run_cli, scenes, tmp_path):
    source = scenes["pngs"][0]
    default = changed_pixels(run_cli, tmp_path, source)
    no_conf = changed_pixels(run_cli, tmp_path, source, "--hide-conf")
    no_labels = changed_pixels(run_cli, tmp_path, source, "--hide-labels")
    thin = changed_pixels(run_cli, tmp_path, source, "--hide-labels", "--line-thickness", "1")
    thick = changed_pixels(run_cli, tmp_path, source, "--hide-labels", "--line-thickness", "4")
    assert default > no_conf > no_labels > 0
    assert thick > 2 * thin > 0


def test_console_lines_for_images_and_videos(run_cli, scenes, tmp_path):
    out = tmp_path / "r.jsonl"
    proc = detect(run_cli, tmp_path, "--model", MODEL, "--source", scenes["images"], "--source", scenes["video"],
                  "--vid-stride", "2", "--json", out)
    assert proc.returncode == 0, proc.stderr
    rows = read_json_lines(out)
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("jitvision: ")]
    assert len(lines) == len(rows) == 3 + 4
    # The two sources are read at once: their lines interleave, each source's in its own order, and each item is
    # numbered in the order it first appears.
    number = {source: n + 1 for n, source in enumerate(dict.fromkeys(r["source"] for r in rows))}
    image_lines = [(line, row) for line, row in zip(lines, rows) if row["source"] != str(scenes["video"])]
    video_lines = [(line, row) for line, row in zip(lines, rows) if row["source"] == str(scenes["video"])]
    assert len(image_lines) == 3
    for line, row in image_lines:
        match = LINE.match(line)
        assert match, line
        assert match.group(1, 2, 3, 4, 5) == (str(number[row["source"]]), "4", row["source"], "256", "256")
        counts = {}
        for d in sorted(row["detections"], key=lambda d: d["cls"]):
            counts[d["name"]] = counts.get(d["name"], 0) + 1
        expected = "".join(f"{n} {name}{'s' * (n > 1)}, " for name, n in counts.items()) or "(no detections), "
        assert match.group(6) == expected
    for line, row in video_lines:
        video_no = number[row["source"]]
        assert line.startswith(f"video {video_no}/4 ({row['frame'] + 1}/{VIDEO_FRAMES}) {scenes['video']}: 256x256 ")
    assert any("frames from 2 source(s)" in line for line in proc.stderr.splitlines())
    quiet = detect(run_cli, tmp_path, "--model", MODEL, "--source", scenes["video"], "--quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_progress_line_on_a_terminal(jitvision_bin, scenes, tmp_path):
    parent, child = pty.openpty()
    proc = subprocess.Popen([str(jitvision_bin), "detect", *BASE, "--model", str(MODEL), "--source",
                             str(scenes["video"])], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=child)
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(parent, 4096)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(parent)
    assert proc.wait(timeout=120) == 0
    text = b"".join(chunks).decode()
    for done in range(1, VIDEO_FRAMES + 1):
        pct = 100 * done // VIDEO_FRAMES
        assert re.search(rf"{re.escape(str(scenes['video']))}: {done}/{VIDEO_FRAMES} frames \({pct}%\), "
                         rf"[\d.]+ FPS(, ETA [\d.]+ s)?", text), text
    assert "\r\x1b[K" in text and f"video 1/1 ({VIDEO_FRAMES}/{VIDEO_FRAMES})" in text


def test_reference_detector_takes_the_same_spellings(run_cli, scenes, named_model, tmp_path, python_exe):
    strided = reference(python_exe, "--weights", MODEL, "--source", scenes["video"], "--vid-stride", "3")
    cpp = json_run(run_cli, tmp_path, "--model", MODEL, "--source", scenes["video"], "--vid-stride", "3")
    assert [r["frame"] for r in strided] == [r["frame"] for r in cpp] == [0, 3, 6]
    assert [[d["cls"] for d in r["detections"]] for r in strided] == [[d["cls"] for d in r["detections"]] for r in cpp]
    by_name = reference(python_exe, "--model", named_model, "--img", "64", "--classes", "dog", "fox", "--source",
                        scenes["pngs"][0])
    by_index = reference(python_exe, "--model", named_model, "--img", "64", "--classes", "1", "2", "--source",
                         scenes["pngs"][0])
    assert by_name == by_index and {d["name"] for d in by_name[0]["detections"]} <= {"dog", "fox"}
    proc = subprocess.run([python_exe, "-m", "jitvision", "yolov5", "detect", "--weights", str(named_model),
                           "--classes", "cow", "--source", str(scenes["pngs"][0])], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr == ("jitvision: error: --classes cow: the model has no class of that "
                                                    "name (its classes: cat, dog, fox)\n")
