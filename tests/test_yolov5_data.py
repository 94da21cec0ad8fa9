"""The official yolov5n checkpoint end to end: safe import, export (dynamic and fixed), detection, info.

The exports come from conftest's cached ``yolov5n_exports`` (made by `yolov5 import`, with and without --fixed).

Needs JITVISION_DATA_DIR (weights/yolov5n.pt, images/bus.jpg, images/zidane.jpg); skipped without it.
"""
import hashlib
import json
import re
import sys
from collections import Counter

import cv2
import pytest

from jitvision.__main__ import main
from jitvision.model_file import load_model
from jitvision.yolov5.checkpoint import import_checkpoint
from jitvision.yolov5.detect import detect, load_detector

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def weights(data_dir):
    return data_dir / "weights" / "yolov5n.pt"


@pytest.fixture(scope="module")
def images(data_dir):
    return {name: data_dir / "images" / f"{name}.jpg" for name in ("bus", "zidane")}


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def detections(capsys, model, *sources):
    code, out, err = run_cli(capsys, "yolov5", "detect", "--model", model, "--source", *sources, "--json")
    assert code == 0, err
    return [json.loads(line) for line in out.splitlines()]


def test_import_runs_nothing_from_the_checkpoint(weights):
    imported = import_checkpoint(str(weights))
    assert imported.model.nc == 80 and imported.model.names[:2] == ["person", "bicycle"]
    assert imported.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert "models" not in sys.modules and "models.yolo" not in sys.modules


def test_import_command_reports_time_and_verification(capsys, weights, tmp_path):
    code, out, err = run_cli(capsys, "yolov5", "import", weights, "--out", tmp_path / "n64.torchscript", "--img", "64")
    assert code == 0, err
    assert re.search(r"exported .*n64\.torchscript by trace \(dynamic size, rect letterbox\) in \d+\.\d s", out)
    assert ("verified TorchScript vs eager at 64x64, 32x64, 32x32 (batch 2; the last size at batch 1 too): "
            "max abs diff 0 ") in out


def test_exports_record_their_verification(yolov5n_exports, weights):
    sizes = {"dynamic": [[640, 640], [384, 640], [320, 256]], "fixed": [[640, 640]]}
    for kind, path in yolov5n_exports.items():
        meta = load_model(str(path)).metadata
        assert meta["verification"]["sizes"] == sizes[kind] and meta["verification"]["max_abs_diff"] <= 1e-4
        assert meta["dynamic"] == (kind == "dynamic") and meta["source"]["file"] == "yolov5n.pt"
        assert meta["source"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()


def test_bus_and_zidane(capsys, yolov5n_exports, images):
    records = detections(capsys, yolov5n_exports["dynamic"], images["bus"], images["zidane"])
    assert [(r["frame"], r["shape"]) for r in records] == [(0, [1080, 810]), (0, [720, 1280])]
    bus, zidane = (Counter(d["name"] for d in r["detections"]) for r in records)
    assert bus == {"person": 4, "bus": 1}
    assert zidane["person"] == 2 and zidane["tie"] >= 1
    big_bus = next(d for d in records[0]["detections"] if d["name"] == "bus")
    assert big_bus["conf"] > 0.4
    assert big_bus["xyxy"] == pytest.approx([23.0, 228.0, 805.7, 780.5], abs=2.0)
    best = max(records[1]["detections"], key=lambda d: d["conf"])
    assert best["name"] == "person" and best["xyxy"] == pytest.approx([742.7, 39.6, 1154.5, 715.1], abs=2.0)


def test_checkpoint_and_its_export_give_the_same_boxes(yolov5n_exports, images):
    image = cv2.imread(str(images["zidane"]))
    from_pt = detect(load_detector(str(images["zidane"].parents[1] / "weights" / "yolov5n.pt")), image)
    from_ts = detect(load_detector(str(yolov5n_exports["dynamic"])), image)
    assert [d["cls"] for d in from_pt] == [d["cls"] for d in from_ts]
    for a, b in zip(from_pt, from_ts):
        assert a["conf"] == pytest.approx(b["conf"], abs=1e-4)
        assert a["xyxy"] == pytest.approx(b["xyxy"], abs=1e-2)


def test_fixed_export_uses_the_square_letterbox(capsys, yolov5n_exports, images):
    path = yolov5n_exports["fixed"]
    detector = load_detector(str(path))
    assert not detector.rect and detector.input_shape(None) == (640, 640)
    code, _, err = run_cli(capsys, "yolov5", "detect", "--model", path, "--source", images["bus"], "--img", "320")
    assert code == 3 and "only 640x640" in err
    record, = detections(capsys, path, images["bus"])
    assert Counter(d["name"] for d in record["detections"])["person"] >= 3


def test_video_frames_are_numbered(capsys, yolov5n_exports, images, tmp_path):
    image = cv2.imread(str(images["bus"]))
    video = tmp_path / "bus.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5, (image.shape[1], image.shape[0]))
    for _ in range(3):
        writer.write(image)
    writer.release()
    records = detections(capsys, yolov5n_exports["dynamic"], video)
    assert [r["frame"] for r in records] == [0, 1, 2]
    assert all(Counter(d["name"] for d in r["detections"])["bus"] == 1 for r in records)


def test_info_on_both_exports(capsys, yolov5n_exports):
    for kind, path in yolov5n_exports.items():
        code, out, _ = run_cli(capsys, "info", path, "--json")
        assert code == 0
        info = json.loads(out)
        assert info["build"] == "traced"
        assert info["parameters"] == 1867405
        assert info["input"] == {"shape": [1, 3, 640, 640], "dtype": "float32", "dynamic": kind == "dynamic"}
        assert info["outputs"] == [{"shape": [1, 25200, 85], "dtype": "float32"}]
        assert info["metadata"]["source"]["file"] == "yolov5n.pt" and info["config"]["names"]["0"] == "person"
        code, out, _ = run_cli(capsys, "info", path)
        assert code == 0 and re.search(r"^build: +traced$", out, re.M) and "1,867,405" in out
