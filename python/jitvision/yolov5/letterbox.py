"""Letterbox: resize keeping the aspect ratio, then pad with grey 114 (YOLOv5 reference semantics).

The C++ app mirrors :func:`letterbox_geometry` exactly; keep the two in step.
"""
from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np
import torch

PAD_VALUE = 114


@dataclass(frozen=True)
class LetterboxGeometry:
    resized_w: int
    resized_h: int
    top: int
    bottom: int
    left: int
    right: int

    @property
    def shape(self) -> Tuple[int, int]:
        """(h, w) of the letterboxed image."""
        return self.top + self.resized_h + self.bottom, self.left + self.resized_w + self.right


def letterbox_geometry(h: int, w: int, input_shape: Tuple[int, int], stride: int = 32,
                       rect: bool = True) -> LetterboxGeometry:
    """Where an h x w image goes inside the model input.

    ``input_shape`` is the target (h, w). r = min(H/h, W/w), upscaling allowed; the resized size is
    (round(w r), round(h r)). Padding is the target minus the resized size; "rect" mode keeps only its remainder
    modulo ``stride`` (the smallest stride multiple that holds the image), "square" mode keeps it all. Half of it
    goes on each side: top/left = round(half - 0.1), bottom/right = round(half + 0.1).
    round() is Python's: an exact half goes to the even neighbour (possible only in w r and h r; the 0.1 offsets
    rule it out for the padding). A C++ port gets the same from std::nearbyint in the default rounding mode.
    """
    r = min(input_shape[0] / h, input_shape[1] / w)
    resized_w, resized_h = int(round(w * r)), int(round(h * r))
    pad_w, pad_h = input_shape[1] - resized_w, input_shape[0] - resized_h
    if rect:
        pad_w, pad_h = pad_w % stride, pad_h % stride
    half_w, half_h = pad_w / 2, pad_h / 2
    return LetterboxGeometry(resized_w, resized_h, top=int(round(half_h - 0.1)), bottom=int(round(half_h + 0.1)),
                             left=int(round(half_w - 0.1)), right=int(round(half_w + 0.1)))


def letterbox(image_bgr: np.ndarray, input_shape: Tuple[int, int], stride: int = 32,
              rect: bool = True) -> Tuple[np.ndarray, LetterboxGeometry]:
    """Resize (bilinear, only when the size changes) and pad an HWC uint8 image; returns it and its geometry."""
    h, w = image_bgr.shape[:2]
    geometry = letterbox_geometry(h, w, input_shape, stride, rect)
    if (geometry.resized_w, geometry.resized_h) != (w, h):
        image_bgr = cv2.resize(image_bgr, (geometry.resized_w, geometry.resized_h), interpolation=cv2.INTER_LINEAR)
    padded = cv2.copyMakeBorder(image_bgr, geometry.top, geometry.bottom, geometry.left, geometry.right,
                                cv2.BORDER_CONSTANT, value=(PAD_VALUE, PAD_VALUE, PAD_VALUE))
    return padded, geometry


def to_input_tensor(image_bgr: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """HWC BGR uint8 -> 1x3xHxW RGB in [0, 1]: converted to float32 first, then divided by 255."""
    chw_rgb = np.ascontiguousarray(image_bgr.transpose(2, 0, 1)[::-1])
    return (torch.from_numpy(chw_rgb).float() / 255.0).unsqueeze(0).to(dtype)
