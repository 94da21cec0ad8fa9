"""Training: augmentation geometry, target assignment and loss pieces, then a tiny end-to-end run (font digits, no
data needed): the loss falls, checkpoints reload with weights_only=True, resume works, the export verifies and
scores alike. Last, the bundled detector on freshly generated digit videos."""
import contextlib
import csv
import io
import json
import math

import cv2
import numpy as np
import pytest
import torch

from jitvision.__main__ import main
from jitvision.data.video import write_video
from jitvision.model_file import load_model
from jitvision.yolov5.augment import DEFAULT_HYP, flip_lr, mosaic, random_affine
from jitvision.yolov5.detect import detect, load_detector
from jitvision.yolov5.loss import YoloLoss, ciou, init_detect_biases, raw_outputs
from jitvision.yolov5.metrics import box_iou
from jitvision.yolov5.model import Yolov5, yolov5_architecture
from jitvision.yolov5.train import load_training_checkpoint, model_from_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model():
    return Yolov5(yolov5_architecture("n", nc=3))


def test_assignment_takes_the_cell_and_its_two_nearest_neighbours(tiny_model):
    loss = YoloLoss(tiny_model, img_size=256)
    # stride 8 level of a 256 input: 32 x 32 cells. Centre at cell (10.3, 20.8): its own cell, the one to the
    # left (x fraction < 0.5) and the one below (y fraction > 0.5). Size 12 x 14 px = 1.5 x 1.75 cells
    # matches all three stride-8 anchors (10x13, 16x30, 33x23 px: ratios within 4).
    targets = torch.tensor([[0, 2, 10.3 / 32, 20.8 / 32, 1.5 / 32, 1.75 / 32]])
    (b, a, gy, gx), box, anchors, cls = loss.assign(0, (32, 32), targets)
    cells = {(int(x), int(y)) for x, y in zip(gx, gy)}
    assert cells == {(10, 20), (9, 20), (10, 21)}
    assert len(b) == 9 and set(a.tolist()) == {0, 1, 2} and set(cls.tolist()) == {2}
    # box centres are relative to the assigned cell: within the 2 sigmoid - 0.5 range [-0.5, 1.5]
    assert box[:, :2].min() >= -0.5 and box[:, :2].max() <= 1.5
    assert torch.allclose(box[:, 2:], torch.tensor([1.5, 1.75]).expand(9, 2))


def test_assignment_rejects_anchors_more_than_4x_off(tiny_model):
    loss = YoloLoss(tiny_model, img_size=256)
    # a 200 x 200 px object at stride 8 is > 4x every anchor there; at stride 32 it fits 116x90 .. 373x326
    targets = torch.tensor([[0, 0, 0.5, 0.5, 200 / 256, 200 / 256]])
    assert len(loss.assign(0, (32, 32), targets)[0][0]) == 0
    assert len(loss.assign(2, (8, 8), targets)[0][0]) > 0


def test_ciou():
    box = torch.tensor([[5.0, 5.0, 2.0, 4.0]])
    assert ciou(box, box).item() == pytest.approx(1.0)
    far = torch.tensor([[50.0, 50.0, 2.0, 4.0]])
    assert ciou(box, far).item() < 0  # no overlap: IoU 0 minus a distance penalty


def test_bias_init_gives_low_objectness(tiny_model):
    model = Yolov5(yolov5_architecture("n", nc=3)).eval()
    init_detect_biases(model)
    with torch.no_grad():
        rows = model(torch.zeros(1, 3, 64, 64))[0]
    assert rows[..., 4].max() < 0.05


def test_loss_has_gradients_and_no_targets_still_trains_objectness(tiny_model):
    loss = YoloLoss(tiny_model, img_size=64)
    outputs = raw_outputs(tiny_model, torch.rand(2, 3, 64, 64))
    total, items = loss(outputs, torch.zeros(0, 6))
    assert items[0] == 0 and items[2] == 0 and items[1] > 0
    total.backward()
    assert tiny_model.detect.m[0].bias.grad is not None


def painted(size, boxes, seed=0):
    """A grey image with each box filled in its own colour, and the colours."""
    image = np.full((size, size, 3), 114, np.uint8)
    colours = np.random.default_rng(seed).integers(0, 100, (len(boxes), 3)) * 2 + 1  # odd: never grey 114
    for (x1, y1, x2, y2), c in zip(boxes.astype(int), colours):
        image[y1:y2, x1:x2] = c
    return image, colours


def test_mosaic_and_affine_keep_boxes_on_their_objects():
    rng = np.random.default_rng(1)
    boxes = [np.array([[10, 20, 40, 60], [70, 5, 90, 30]], np.float32) + k for k in range(4)]
    images, colours = zip(*(painted(100, b, seed=k) for k, b in enumerate(boxes)))
    canvas, moved = mosaic(list(images), boxes, 100, rng)
    hyp = {**DEFAULT_HYP, "degrees": 0.0, "shear": 0.0}
    out, kept_boxes, keep = random_affine(canvas, moved, 100, hyp, rng)
    all_colours = np.concatenate(colours)[keep]
    assert len(keep) > 0
    for (x1, y1, x2, y2), colour in zip(kept_boxes, all_colours):
        centre = out[int((y1 + y2) / 2), int((x1 + x2) / 2)].astype(int)
        assert np.abs(centre - colour).max() <= 2  # the box still sits on its own object


def test_flip_mirrors_boxes():
    image, _ = painted(50, np.array([[5, 10, 15, 20]], np.float32))
    flipped, boxes = flip_lr(image, np.array([[5, 10, 15, 20]], np.float32))
    assert boxes.tolist() == [[35, 10, 45, 20]]
    assert (flipped[10:20, 35:45] == image[10:20, 5:15]).all()


def run_cli(args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in args])
    return code, out.getvalue()


def epoch_losses(results):
    with open(results) as f:
        return [float(r["box_loss"]) + float(r["obj_loss"]) + float(r["cls_loss"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_torch_thread):
    root = tmp_path_factory.mktemp("train")
    data = root / "digits"
    for split, n in (("train", 32), ("val", 8)):
        assert main(["data", "digits", "--out", str(data), "--n", str(n), "--split", split, "--img", "128",
                     "--font-fraction", "1"]) == 0
    code, log = run_cli(["yolov5", "train", "--data", data / "data.yaml", "--cfg", "n", "--img", 128, "--epochs", 2,
                         "--batch", 8, "--workers", 0, "--project", root / "runs", "--hyp", "warmup_epochs=0",
                         "lr0=0.02", "--export-method", "script"])
    assert code == 0, log
    out = root / "runs" / "exp"  # the first run under a project gets NAME itself
    assert f"run folder: {out}" in log
    return data, out


def one_epoch_run(data, *extra):
    return run_cli(["yolov5", "train", "--data", data / "data.yaml", "--cfg", "n", "--img", 64, "--epochs", 1,
                    "--batch", 8, "--workers", 0, "--no-export", *extra])


def test_runs_never_overwrite_each_other(trained):
    data, first = trained
    project = first.parent
    before = (first / "weights" / "last.pt").read_bytes()
    code, log = one_epoch_run(data, "--project", project)
    assert code == 0, log
    second = project / "exp2"
    assert f"run folder: {second}" in log
    assert (first / "weights" / "last.pt").read_bytes() == before
    assert len(epoch_losses(first / "results.csv")) == 2 and len(epoch_losses(second / "results.csv")) == 1
    # --exist-ok writes into PROJECT/NAME again: a new run there, with results of its own
    code, log = one_epoch_run(data, "--project", project, "--name", "exp2", "--exist-ok")
    assert code == 0, log
    assert f"run folder: {second}" in log and not (project / "exp3").exists()
    assert len(epoch_losses(second / "results.csv")) == 1
    assert load_training_checkpoint(str(second / "weights" / "last.pt"))["run_dir"] == str(second)


def test_training_lowers_the_loss(trained):
    _, out = trained
    first, second = epoch_losses(out / "results.csv")
    assert second < first


def test_checkpoints_reload_safely(trained):
    _, out = trained
    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(out / "weights" / name, map_location="cpu", weights_only=True)
        assert ckpt["names"] == [str(d) for d in range(10)] and ckpt["arch"]["nc"] == 10
        assert set(ckpt) >= {"model", "ema", "optimizer", "epoch", "arch"}
    model = model_from_checkpoint(load_training_checkpoint(str(out / "weights" / "last.pt")))
    assert model.nc == 10


def test_resume_continues_from_the_saved_epoch(trained, tmp_path):
    data, out = trained
    ckpt = torch.load(out / "weights" / "last.pt", map_location="cpu", weights_only=True)
    ckpt["epoch"] = 0  # as if stopped after the first of two epochs
    ckpt["run_dir"] = str(tmp_path)
    torch.save(ckpt, tmp_path / "stopped.pt")
    code, log = run_cli(["yolov5", "train", "--resume", tmp_path / "stopped.pt"])
    assert code == 0, log
    assert "resuming" in log and f"run folder: {tmp_path}" in log  # the folder of the resumed run, not a new one
    assert len(epoch_losses(tmp_path / "results.csv")) == 1
    assert torch.load(tmp_path / "weights" / "last.pt", weights_only=True)["epoch"] == 1
    code, log = run_cli(["yolov5", "train", "--resume", tmp_path / "weights" / "last.pt"])
    assert code == 2  # finished already: a usage error


def test_export_verifies_and_scores_like_the_checkpoint(trained):
    data, out = trained
    exported = out / "weights" / "best.torchscript"
    extras = load_model(str(exported)).extras
    meta = json.loads(extras["jitvision.json"])
    assert meta["dynamic"] and meta["nc"] == 10 and meta["img_size"] == 128 and meta["export"] == "script"
    assert meta["verification"]["max_abs_diff"] <= 1e-4
    detector = load_detector(str(exported))
    image = next((data / "images" / "val").iterdir())
    detect(detector, cv2.imread(str(image)), conf_thres=0.001)  # runs through the reference pipeline
    scores = []
    for weights in (out / "weights" / "best.pt", exported):
        code, log = run_cli(["yolov5", "val", "--data", data / "data.yaml", "--weights", weights, "--json"])
        assert code == 0, log
        scores.append(json.loads(log))
    assert scores[0]["labels"] == scores[1]["labels"] > 0
    for key in ("mAP50", "mAP50-95"):
        assert math.isclose(scores[0][key], scores[1][key], abs_tol=0.01)


def found_with_right_class(model_path, video, truth):
    """Share of true digits that the reference detector finds (IoU >= 0.5) with the right class."""
    detector = load_detector(str(model_path))
    capture = cv2.VideoCapture(str(video))
    found = total = 0
    for line in truth.read_text().splitlines():
        ok, frame = capture.read()
        assert ok
        truth_line = json.loads(line)
        detections = detect(detector, frame)
        boxes = np.array([d["xyxy"] for d in detections]).reshape(-1, 4)
        classes = np.array([d["cls"] for d in detections])
        iou = box_iou(np.array(truth_line["boxes"]), boxes)
        for g, cls in enumerate(truth_line["cls"]):
            found += bool(len(classes) and ((iou[g] >= 0.5) & (classes == cls)).any())
            total += 1
    return found / total


@pytest.mark.parametrize("source", ["cv2-font", "mnist-heldout"])
def test_bundled_detector_reads_a_fresh_digit_video(repo_root, tmp_path, request, source):
    model = repo_root / "models" / "digits_yolov5n.torchscript"
    assert model.stat().st_size < 8 * 1024 * 1024
    mnist = request.getfixturevalue("data_dir") / "mnist" if source == "mnist-heldout" else None
    # 24 digit images (6 at a time, new ones every 10 frames): one hard digit costs at most ~4%
    info = write_video(tmp_path / "v.avi", tmp_path / "t.jsonl", frames=40, seed=0, mnist_dir=mnist, swap_every=10)
    assert info["source"] == source
    assert found_with_right_class(model, tmp_path / "v.avi", tmp_path / "t.jsonl") >= 0.9
