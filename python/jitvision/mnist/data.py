"""MNIST from IDX files: reading, validation, and the train / held-out split.

With the four official files present, training uses the 60,000 training images and the 10,000 test images are
held out. With only the test set present, a fixed split of it is used: index i is held out when i % 5 == 4
(2,000 images), the other 8,000 train.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jitvision.errors import InputError

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"

TORCHVISION_SUBDIR = Path("MNIST", "raw")

HELDOUT_EVERY = 5
HELDOUT_REMAINDER = 4
SPLIT_DESCRIPTION = ("MNIST test set only (the 60,000-image training set was not found): trained on its 8,000 "
                     "images with index % 5 != 4, held out the 2,000 with index % 5 == 4")
FULL_DESCRIPTION = "MNIST training set (60,000 images); held out: the official 10,000-image test set"


class MnistDataError(InputError):
    """A missing, malformed or inconsistent MNIST file."""


def default_data_dir() -> Path | None:
    """``$JITVISION_DATA_DIR/mnist``, or None when the variable is unset."""
    root = os.environ.get("JITVISION_DATA_DIR")
    return Path(root) / "mnist" if root else None


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise MnistDataError(f"cannot read {path}: {e}") from e


def _header(data: bytes, path: Path, magic: int, words: int) -> list[int]:
    found = int.from_bytes(data[:4], "big")
    if len(data) < 4 or found != magic:
        raise MnistDataError(f"{path} has magic number 0x{found:08x}, expected 0x{magic:08x}: "
                             "not an MNIST IDX file of this kind")
    if len(data) < 4 * words:
        raise MnistDataError(f"{path} is too short for an IDX header ({len(data)} bytes)")
    return [int.from_bytes(data[4 * i:4 * i + 4], "big") for i in range(1, words)]


def read_idx_images(path: str | Path) -> np.ndarray:
    """Images as uint8 [N, rows, cols] from an IDX3 file (raw or .gz)."""
    path = Path(path)
    data = _read_bytes(path)
    count, rows, cols = _header(data, path, IMAGES_MAGIC, 4)
    expected = 16 + count * rows * cols
    if len(data) != expected:
        raise MnistDataError(f"{path} holds {len(data)} bytes, its header ({count} images of {rows}x{cols}) "
                             f"needs {expected}")
    return np.frombuffer(data, np.uint8, offset=16).reshape(count, rows, cols)


def read_idx_labels(path: str | Path) -> np.ndarray:
    """Labels as uint8 [N] from an IDX1 file (raw or .gz)."""
    path = Path(path)
    data = _read_bytes(path)
    (count,) = _header(data, path, LABELS_MAGIC, 2)
    if len(data) != 8 + count:
        raise MnistDataError(f"{path} holds {len(data)} bytes, its header ({count} labels) needs {8 + count}")
    labels = np.frombuffer(data, np.uint8, offset=8)
    if labels.size and labels.max() > 9:
        raise MnistDataError(f"{path} has label {labels.max()}, MNIST labels are 0-9")
    return labels


def find_idx(data_dir: Path, name: str) -> Path | None:
    """The file ``name`` or ``name.gz`` in data_dir or in torchvision's layout below it (MNIST/raw), or None."""
    for folder in (data_dir, data_dir / TORCHVISION_SUBDIR):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def read_pair(data_dir: Path, images_name: str, labels_name: str) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = find_idx(data_dir, images_name), find_idx(data_dir, labels_name)
    missing = [n for n, p in ((images_name, images_path), (labels_name, labels_path)) if p is None]
    if missing:
        raise MnistDataError(f"{data_dir} has no {' or '.join(missing)} (raw or .gz)")
    images, labels = read_idx_images(images_path), read_idx_labels(labels_path)
    if images.shape[1:] != (28, 28):
        raise MnistDataError(f"{images_path} holds {images.shape[1]}x{images.shape[2]} images, MNIST's are 28x28")
    if len(images) != len(labels):
        raise MnistDataError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
    return images, labels


def heldout_mask(count: int) -> np.ndarray:
    """True for the images the fallback split holds out (index % 5 == 4)."""
    return np.arange(count) % HELDOUT_EVERY == HELDOUT_REMAINDER


@dataclass
class MnistSplit:
    train_images: np.ndarray  # uint8 [N, 28, 28]
    train_labels: np.ndarray  # uint8 [N]
    heldout_images: np.ndarray
    heldout_labels: np.ndarray
    kind: str  # "mnist-full" or "mnist-test-split"
    description: str


def has_full_set(data_dir: Path) -> bool:
    return all(find_idx(data_dir, n) for n in (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS))


def load_heldout(data_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Just the held-out images and labels of the split ``load_split`` would choose."""
    split = load_split(data_dir, train=False)
    return split.heldout_images, split.heldout_labels


def load_split(data_dir: str | Path, train: bool = True) -> MnistSplit:
    """The full train/test split when all four files exist, else the fixed split of the test set.

    With ``train=False`` the training arrays are left empty (and the 60,000 images are not read).
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise MnistDataError(f"MNIST data directory {data_dir} does not exist "
                             "(set JITVISION_DATA_DIR, pass --data-dir, or use --download)")
    test_images, test_labels = read_pair(data_dir, TEST_IMAGES, TEST_LABELS)
    empty_images, empty_labels = np.zeros((0, 28, 28), np.uint8), np.zeros((0,), np.uint8)
    if has_full_set(data_dir):
        train_images, train_labels = (read_pair(data_dir, TRAIN_IMAGES, TRAIN_LABELS) if train
                                      else (empty_images, empty_labels))
        return MnistSplit(train_images, train_labels, test_images, test_labels, "mnist-full", FULL_DESCRIPTION)
    held = heldout_mask(len(test_images))
    train_images, train_labels = ((test_images[~held], test_labels[~held]) if train
                                  else (empty_images, empty_labels))
    return MnistSplit(train_images, train_labels, test_images[held], test_labels[held],
                      "mnist-test-split", SPLIT_DESCRIPTION)


def download(data_dir: str | Path) -> None:
    """Fetch the four official files (checksummed) with torchvision's downloader into data_dir/MNIST/raw."""
    from torchvision.datasets import MNIST
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    MNIST(root=str(data_dir), download=True)
