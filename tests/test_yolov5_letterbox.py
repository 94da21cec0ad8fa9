"""Letterbox arithmetic and pixels, and the input tensor layout (YOLOv5 reference semantics)."""
import numpy as np
import pytest
import torch

from jitvision.yolov5.letterbox import LetterboxGeometry, letterbox, letterbox_geometry, to_input_tensor


@pytest.mark.parametrize("h, w, rect, expected", [
    # 16:9 video: 640x360, rect pads 24 rows (12 + 12) up to 384
    (720, 1280, True, LetterboxGeometry(640, 360, 12, 12, 0, 0)),
    (720, 1280, False, LetterboxGeometry(640, 360, 140, 140, 0, 0)),
    # portrait bus.jpg: 480x640, already a multiple of 32 in rect mode
    (1080, 810, True, LetterboxGeometry(480, 640, 0, 0, 0, 0)),
    (1080, 810, False, LetterboxGeometry(480, 640, 0, 0, 80, 80)),
    # odd padding: the extra pixel goes to the bottom/right
    (361, 640, True, LetterboxGeometry(640, 361, 11, 12, 0, 0)),
    (361, 640, False, LetterboxGeometry(640, 361, 139, 140, 0, 0)),
    (640, 361, True, LetterboxGeometry(361, 640, 0, 0, 11, 12)),
    # upscaling a tiny image
    (39, 39, True, LetterboxGeometry(640, 640, 0, 0, 0, 0)),
    (30, 40, True, LetterboxGeometry(640, 480, 0, 0, 0, 0)),
])
def test_geometry(h, w, rect, expected):
    geometry = letterbox_geometry(h, w, (640, 640), 32, rect)
    assert geometry == expected
    out_h, out_w = geometry.shape
    assert (out_h % 32, out_w % 32) == (0, 0)
    if not rect:
        assert geometry.shape == (640, 640)


def test_rect_shapes_from_the_spec():
    assert letterbox_geometry(720, 1280, (640, 640)).shape == (384, 640)
    assert letterbox_geometry(1080, 810, (640, 640)).shape == (640, 480)


def test_pixels_padding_and_resize():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    padded, geometry = letterbox(image, (640, 640), 32, rect=True)
    assert padded.shape == (384, 640, 3) and padded.dtype == np.uint8
    assert (padded[:12] == 114).all() and (padded[-12:] == 114).all()
    inner = padded[12:-12]
    assert inner.shape == (360, 640, 3) and not (inner == 114).all()


def test_no_resize_when_size_already_fits():
    image = np.full((384, 640, 3), 7, np.uint8)
    padded, geometry = letterbox(image, (640, 640), 32, rect=False)
    assert geometry == LetterboxGeometry(640, 384, 128, 128, 0, 0)
    assert (padded[128:512] == 7).all() and (padded[:128] == 114).all()


def test_input_tensor_is_rgb_chw_unit_range():
    image = np.zeros((4, 6, 3), np.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 255  # B, G, R
    x = to_input_tensor(image)
    assert x.shape == (1, 3, 4, 6) and x.dtype == torch.float32
    assert torch.equal(x[0, :, 0, 0], torch.tensor([255, 20, 10], dtype=torch.float32) / 255.0)
    assert to_input_tensor(image, torch.float16).dtype == torch.float16
