"""The synthetic digits data: YOLO labels that fit the images, train/val digits disjoint, video truth consistent."""
import json

import cv2
import numpy as np
import pytest
import yaml

from jitvision.__main__ import main
from jitvision.data.glyphs import MnistPool
from jitvision.data.video import write_video
from jitvision.yolov5.dataset import load_data_config


def read_split(root, split):
    images = sorted((root / "images" / split).glob("*.jpg"))
    labels = [np.loadtxt(root / "labels" / split / f"{p.stem}.txt", ndmin=2).reshape(-1, 5) for p in images]
    return images, labels


def check_labels(images, labels, size):
    assert images
    for path, lab in zip(images, labels):
        image = cv2.imread(str(path))
        assert image.shape == (size, size, 3)
        assert len(lab) >= 1
        assert set(lab[:, 0]) <= set(range(10))
        x1, y1 = lab[:, 1] - lab[:, 3] / 2, lab[:, 2] - lab[:, 4] / 2
        x2, y2 = lab[:, 1] + lab[:, 3] / 2, lab[:, 2] + lab[:, 4] / 2
        assert (x1 >= -1e-6).all() and (y1 >= -1e-6).all() and (x2 <= 1 + 1e-6).all() and (y2 <= 1 + 1e-6).all()
        assert (lab[:, 4] * size >= 0.07 * size * 0.5).all()  # digits are never specks
        for _, cx, cy, w, h in lab * size:  # ink inside every box: its pixels vary far more than flat paper would
            crop = image[int(cy - h / 2):int(cy + h / 2), int(cx - w / 2):int(cx + w / 2)]
            assert crop.astype(float).std() > 8


def test_font_digits_without_mnist(tmp_path):
    assert main(["data", "digits", "--out", str(tmp_path), "--n", "6", "--img", "160", "--font-fraction", "1"]) == 0
    images, labels = read_split(tmp_path, "train")
    assert len(images) == 6
    check_labels(images, labels, 160)
    config = load_data_config(tmp_path / "data.yaml")
    assert config.names == [str(d) for d in range(10)]
    assert config.hyp["fliplr"] == 0.0  # a mirrored digit is not a digit
    assert config.train == tmp_path.resolve() / "images" / "train"


@pytest.mark.parametrize("data_dir_env, code, says", [(None, 2, "pass --mnist DIR or set JITVISION_DATA_DIR"),
                                                      ("empty", 5, "mnist does not exist: pass --mnist DIR")])
def test_mnist_digits_without_mnist_say_what_they_need(tmp_path, monkeypatch, capsys, data_dir_env, code, says):
    if data_dir_env is None:
        monkeypatch.delenv("JITVISION_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("JITVISION_DATA_DIR", str(tmp_path))
    assert main(["data", "digits", "--out", str(tmp_path / "d"), "--n", "2", "--split", "train"]) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]


def test_generation_is_deterministic(tmp_path):
    for name in ("a", "b"):
        assert main(["data", "digits", "--out", str(tmp_path / name), "--n", "2", "--img", "96",
                     "--font-fraction", "1", "--seed", "3"]) == 0
    for a, b in zip(*(sorted((tmp_path / n / "labels" / "train").iterdir()) for n in ("a", "b"))):
        assert a.read_text() == b.read_text()


def test_mnist_train_and_val_digits_are_disjoint(tmp_path, data_dir):
    mnist = data_dir / "mnist"
    train, val = MnistPool(mnist, "train"), MnistPool(mnist, "val")
    assert not set(train.ids) & set(val.ids)
    for split in ("train", "val"):
        assert main(["data", "digits", "--out", str(tmp_path), "--n", "8", "--split", split, "--img", "192",
                     "--mnist", str(mnist)]) == 0
    used = {split: [d for line in (tmp_path / "sources" / f"{split}.jsonl").read_text().splitlines()
                    for d in json.loads(line)["digits"]] for split in ("train", "val")}
    assert "font" not in used["val"]  # validation is MNIST only
    mnist_train = {d for d in used["train"] if d != "font"}
    assert mnist_train and not mnist_train & set(used["val"])
    assert mnist_train <= set(train.ids) and set(used["val"]) <= set(val.ids)
    for split in ("train", "val"):
        images, labels = read_split(tmp_path, split)
        assert sum(len(lab) for lab in labels) == len(used[split])
        check_labels(images, labels, 192)
    assert set(yaml.safe_load((tmp_path / "data.yaml").read_text())) >= {"path", "train", "val", "names"}


def read_video(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def check_video(video, truth, frames, source, swap_every):
    lines = [json.loads(line) for line in truth.read_text().splitlines()]
    decoded = read_video(video)
    assert len(decoded) == len(lines) == frames
    assert [line["frame"] for line in lines] == list(range(frames))
    h, w = decoded[0].shape[:2]
    assert (h, w) == (360, 640)
    for line, frame in zip(lines, decoded):
        assert line["digits"] == source
        assert len(line["boxes"]) == len(line["cls"]) == 6 and len(set(line["cls"])) == 6
        for x1, y1, x2, y2 in line["boxes"]:
            assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h
            assert frame[y1:y2, x1:x2].astype(float).std() > 20  # the digit's ink is there
    assert lines[0]["boxes"] != lines[1]["boxes"]  # the digits move
    for f in range(1, frames):  # and are replaced by others every swap_every frames
        assert (lines[f]["cls"] != lines[f - 1]["cls"]) == (f % swap_every == 0)


def test_video_without_mnist_uses_fonts(tmp_path, monkeypatch):
    monkeypatch.delenv("JITVISION_DATA_DIR", raising=False)
    assert main(["data", "digits-video", "--out", str(tmp_path / "v.mp4"), "--truth", str(tmp_path / "t.jsonl"),
                 "--frames", "12", "--swap-every", "6"]) == 0
    check_video(tmp_path / "v.mp4", tmp_path / "t.jsonl", 12, "cv2-font", 6)


def test_video_with_mnist_uses_heldout_digits(tmp_path, data_dir):
    info = write_video(tmp_path / "v.avi", tmp_path / "t.jsonl", frames=8, mnist_dir=data_dir / "mnist",
                       swap_every=3)
    assert info["source"] == "mnist-heldout"
    check_video(tmp_path / "v.avi", tmp_path / "t.jsonl", 8, "mnist-heldout", 3)
    assert info["digits"] == 18
