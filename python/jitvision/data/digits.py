"""The "digits in scenes" detection data set: several digits as ink on a procedural scene, YOLO labels.

Training images take their MNIST digits from the training split, validation images from the held-out split, so
no digit image is in both. A fraction of training digits is drawn in OpenCV fonts instead, so the detector also
finds printed digits (the sample video falls back to them when MNIST is absent).
Layout written: ``DIR/images/{split}/*.jpg``, ``DIR/labels/{split}/*.txt`` (``cls cx cy w h``, normalised),
``DIR/sources/{split}.jsonl`` (which digit image each label came from) and ``DIR/data.yaml``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import cv2
import numpy as np
import yaml

from jitvision.data import scenes
from jitvision.data.glyphs import MnistPool, font_glyph, ink_box, ink_colour, paste, transform
from jitvision.errors import OutputError

SPLITS = ("train", "val")
NAMES = [str(d) for d in range(10)]
# augmentation settings the trainer reads from data.yaml: a mirrored digit is not a digit, so no flips, and a
# digit mostly cut off may read as another, so it loses its label
HYP = {"fliplr": 0.0, "degrees": 5.0, "scale": 0.3, "min_visible": 0.6}
DEFAULT_FONT_FRACTION = {"train": 0.15, "val": 0.0}


@dataclass
class Scene:
    image: np.ndarray  # uint8 BGR
    boxes: List[Tuple[int, int, int, int]] = field(default_factory=list)  # xyxy pixels, x2/y2 exclusive
    classes: List[int] = field(default_factory=list)
    sources: List[str] = field(default_factory=list)


def place_digits(rng: np.random.Generator, image: np.ndarray, glyphs, count: int, heights: Tuple[float, float],
                 max_angle: float = 15.0, tries: int = 40) -> Scene:
    """Blend up to ``count`` digits (from the callable ``glyphs(rng)``) into the float32 ``image`` in place,
    none overlapping another; returns their boxes (the image is not yet converted)."""
    h, w = image.shape[:2]
    scene = Scene(image)
    for _ in range(count):
        glyph = glyphs(rng)
        alpha = transform(glyph, rng.uniform(*heights), rng.uniform(-max_angle, max_angle), rng)
        if alpha is None or alpha.shape[0] >= h or alpha.shape[1] >= w:
            continue
        bx1, by1, bx2, by2 = ink_box(alpha)
        for _ in range(tries):
            x, y = int(rng.integers(0, w - alpha.shape[1] + 1)), int(rng.integers(0, h - alpha.shape[0] + 1))
            box = (x + bx1, y + by1, x + bx2, y + by2)
            if all(box[0] >= o[2] + 3 or box[2] + 3 <= o[0] or box[1] >= o[3] + 3 or box[3] + 3 <= o[1]
                   for o in scene.boxes):
                break
        else:
            continue
        region = image[box[1]:box[3], box[0]:box[2]]
        colour = ink_colour(rng, float(scenes.luminance(region).mean()))
        paste(image, alpha, x, y, colour, rng.uniform(0.8, 1.0))
        scene.boxes.append(box)
        scene.classes.append(glyph.cls)
        scene.sources.append(glyph.source)
    return scene


def render_scene(rng: np.random.Generator, size: int, pool: Optional[MnistPool], font_fraction: float) -> Scene:
    """One size x size training image with 2-8 digits whose ink is 7%-25% of the image tall."""
    image = scenes.background(rng, size, size)

    def glyphs(r):
        return font_glyph(r) if pool is None or r.random() < font_fraction else pool.sample(r)

    scene = place_digits(rng, image, glyphs, int(rng.integers(2, 9)), (0.07 * size, 0.25 * size))
    scene.image = scenes.camera(rng, scenes.lighting(rng, image))
    return scene


def yolo_lines(scene: Scene) -> List[str]:
    h, w = scene.image.shape[:2]
    return [f"{c} {(x1 + x2) / 2 / w:.6f} {(y1 + y2) / 2 / h:.6f} {(x2 - x1) / w:.6f} {(y2 - y1) / h:.6f}"
            for c, (x1, y1, x2, y2) in zip(scene.classes, scene.boxes)]


def write_data_yaml(out: Path) -> Path:
    path = out / "data.yaml"
    config = {"path": str(out.resolve()), "train": "images/train", "val": "images/val", "nc": len(NAMES),
              "names": NAMES, "hyp": HYP}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_split(out: Path, split: str, n: int, size: int = 320, seed: int = 0, mnist_dir: Optional[Path] = None,
                font_fraction: Optional[float] = None, progress=None) -> Path:
    """Write ``n`` images of ``split`` under ``out`` (replacing that split) and data.yaml; returns data.yaml."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    font_fraction = DEFAULT_FONT_FRACTION[split] if font_fraction is None else font_fraction
    pool = MnistPool(mnist_dir, split) if font_fraction < 1 else None
    images, labels, sources = out / "images" / split, out / "labels" / split, out / "sources"
    for folder in (images, labels):
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
    sources.mkdir(parents=True, exist_ok=True)
    with open(sources / f"{split}.jsonl", "w") as record:
        for i in range(n):
            rng = np.random.default_rng([seed, SPLITS.index(split), i])
            scene = render_scene(rng, size, pool, font_fraction)
            name = f"{split}{i:06d}"
            quality = int(rng.integers(70, 96))
            if not cv2.imwrite(str(images / f"{name}.jpg"), scene.image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
                raise OutputError(f"cannot write {images / name}.jpg")
            (labels / f"{name}.txt").write_text("".join(line + "\n" for line in yolo_lines(scene)))
            record.write(json.dumps({"image": f"{name}.jpg", "digits": scene.sources}) + "\n")
            if progress:
                progress(i + 1)
    return write_data_yaml(out)
