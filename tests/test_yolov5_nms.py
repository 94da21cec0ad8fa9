"""NMS against a brute-force implementation of the reference steps; box scaling back to the image."""
import numpy as np
import pytest
import torch

from jitvision.yolov5.letterbox import letterbox_geometry
from jitvision.yolov5.nms import non_max_suppression, scale_boxes


def brute_force_nms(rows: np.ndarray, conf: float, iou: float, classes=None, max_det=1000) -> np.ndarray:
    """The seven reference steps, one box at a time."""
    candidates = []
    for row in rows:
        if not row[4] > conf:
            continue
        scores = row[5:] * row[4]
        cls = int(np.argmax(scores))
        if not scores[cls] > conf or (classes is not None and cls not in classes):
            continue
        cx, cy, w, h = row[:4]
        candidates.append((float(scores[cls]), cls, np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])))
    candidates.sort(key=lambda c: -c[0])
    kept = []
    for score, cls, box in candidates[:30000]:
        suppressed = False
        for _, other_cls, other in kept:
            if other_cls != cls:
                continue
            ix = max(0.0, min(box[2], other[2]) - max(box[0], other[0]))
            iy = max(0.0, min(box[3], other[3]) - max(box[1], other[1]))
            inter = ix * iy
            union = (box[2] - box[0]) * (box[3] - box[1]) + (other[2] - other[0]) * (other[3] - other[1]) - inter
            if inter / union > iou:
                suppressed = True
                break
        if not suppressed:
            kept.append((score, cls, box))
    return np.array([[*box, score, cls] for score, cls, box in kept[:max_det]]).reshape(-1, 6)


def random_rows(n: int, nc: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(n, 2, generator=g) * 200
    sizes = torch.rand(n, 2, generator=g) * 60 + 5
    probs = torch.rand(n, 1 + nc, generator=g)
    return torch.cat((centres, sizes, probs), 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("conf, iou, classes, max_det", [
    (0.25, 0.45, None, 1000), (0.1, 0.3, None, 1000), (0.25, 0.6, [1, 3], 1000), (0.05, 0.45, None, 7)])
def test_matches_brute_force(seed, conf, iou, classes, max_det):
    rows = random_rows(600, 4, seed)
    got = non_max_suppression(rows, conf, iou, classes, max_det).numpy()
    want = brute_force_nms(rows.numpy().astype(np.float64), conf, iou, classes, max_det)
    assert got.shape == want.shape and len(got) > 0
    np.testing.assert_array_equal(got[:, 5], want[:, 5])
    np.testing.assert_allclose(got[:, :5], want[:, :5], rtol=1e-5, atol=1e-4)


def test_other_classes_never_suppress():
    box = [50.0, 50.0, 20.0, 20.0]
    rows = torch.tensor([box + [0.9, 0.9, 0.1], box + [0.8, 0.1, 0.9]])
    out = non_max_suppression(rows)
    assert out[:, 5].tolist() == [0.0, 1.0]


def test_other_classes_never_suppress_at_img_8192():
    # A class-1 box at (100, 100) moved by a constant 7680 per class lands on the class-0 box at (7780, 7780).
    rows = torch.tensor([[7780.0, 7780.0, 100.0, 100.0, 0.9, 0.9, 0.1],
                         [100.0, 100.0, 100.0, 100.0, 0.8, 0.1, 0.9]])
    out = non_max_suppression(rows)
    assert out[:, 5].tolist() == [0.0, 1.0]


def test_thresholds_are_strict_and_empty_input_works():
    rows = torch.tensor([[50.0, 50.0, 20.0, 20.0, 0.5, 0.5]])  # score 0.25, not > 0.25
    assert non_max_suppression(rows, conf_thres=0.25).shape == (0, 6)
    assert non_max_suppression(torch.zeros(0, 85)).shape == (0, 6)
    assert non_max_suppression(rows.half(), conf_thres=0.2).dtype == torch.float32


def test_scale_boxes_inverts_the_letterbox():
    h0, w0 = 720, 1280
    geometry = letterbox_geometry(h0, w0, (640, 640))
    in_h, in_w = geometry.shape
    gain = min(in_h / h0, in_w / w0)
    original = torch.tensor([[100.0, 200.0, 300.0, 700.0], [0.0, 0.0, 1280.0, 720.0]])
    mapped = original * gain
    mapped[:, [0, 2]] += (in_w - w0 * gain) / 2
    mapped[:, [1, 3]] += (in_h - h0 * gain) / 2
    torch.testing.assert_close(scale_boxes(mapped, (in_h, in_w), (h0, w0)), original)


def test_scale_boxes_clamps_to_the_image():
    boxes = torch.tensor([[-5.0, -5.0, 700.0, 400.0]])
    out = scale_boxes(boxes, (384, 640), (720, 1280))
    assert out.tolist() == [[0.0, 0.0, 1280.0, 720.0]]
