"""The Python side of the digit model: IDX reading, the data split, export verification, the committed model."""
from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from jitvision.__main__ import main
from jitvision.errors import ExportError
from jitvision.mnist import data, export
from jitvision.mnist.model import DigitNet
from jitvision.mnist.normalize import mnist_style
from jitvision.mnist.photos import make_photo, write_digit_photos
from jitvision.mnist.predict import DigitPredictor
from jitvision.mnist.train import to_input
from jitvision.model_file import load_model
from jitvision.samples import write_samples


def idx_bytes(array: np.ndarray) -> bytes:
    magic = data.IMAGES_MAGIC if array.ndim == 3 else data.LABELS_MAGIC
    header = b"".join(int(v).to_bytes(4, "big") for v in (magic, *array.shape))
    return header + array.astype(np.uint8).tobytes()


def write_idx(path, array: np.ndarray, gz: bool) -> None:
    payload = idx_bytes(array)
    if gz:
        with gzip.open(f"{path}.gz", "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def fake_set(folder, images_name, labels_name, count, gz=True, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=count, dtype=np.uint8)
    write_idx(folder / images_name, images, gz)
    write_idx(folder / labels_name, labels, gz)
    return images, labels


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_idx_round_trip(tmp_path, gz):
    images, labels = fake_set(tmp_path, data.TEST_IMAGES, data.TEST_LABELS, 7, gz=gz)
    suffix = ".gz" if gz else ""
    np.testing.assert_array_equal(data.read_idx_images(tmp_path / f"{data.TEST_IMAGES}{suffix}"), images)
    np.testing.assert_array_equal(data.read_idx_labels(tmp_path / f"{data.TEST_LABELS}{suffix}"), labels)


def test_idx_bad_magic_is_reported(tmp_path):
    labels = np.arange(5, dtype=np.uint8)
    path = tmp_path / "labels"
    path.write_bytes(idx_bytes(labels))
    with pytest.raises(data.MnistDataError, match="magic number 0x00000801, expected 0x00000803"):
        data.read_idx_images(path)


def test_idx_truncated_file_is_reported(tmp_path):
    path = tmp_path / "images"
    path.write_bytes(idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-10])
    with pytest.raises(data.MnistDataError, match="needs"):
        data.read_idx_images(path)


def test_idx_corrupt_gzip_is_reported(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(data.MnistDataError, match="cannot read"):
        data.read_idx_images(path)


def test_missing_files_are_named(tmp_path):
    with pytest.raises(data.MnistDataError, match=data.TEST_IMAGES):
        data.load_split(tmp_path)


def test_fallback_split_is_fixed_and_disjoint(tmp_path):
    images, labels = fake_set(tmp_path, data.TEST_IMAGES, data.TEST_LABELS, 50)
    split = data.load_split(tmp_path)
    again = data.load_split(tmp_path)
    assert split.kind == "mnist-test-split" and "index % 5 == 4" in split.description
    np.testing.assert_array_equal(split.heldout_images, images[4::5])
    np.testing.assert_array_equal(split.heldout_labels, labels[4::5])
    np.testing.assert_array_equal(split.heldout_images, again.heldout_images)
    np.testing.assert_array_equal(split.train_images, again.train_images)
    assert len(split.train_images) == 40 and len(split.heldout_images) == 10
    train_rows = {im.tobytes() for im in split.train_images}
    assert not train_rows & {im.tobytes() for im in split.heldout_images}


def test_full_set_is_used_when_present(tmp_path):
    train_images, _ = fake_set(tmp_path, data.TRAIN_IMAGES, data.TRAIN_LABELS, 12, gz=False, seed=1)
    test_images, _ = fake_set(tmp_path, data.TEST_IMAGES, data.TEST_LABELS, 5, seed=2)
    split = data.load_split(tmp_path)
    assert split.kind == "mnist-full"
    np.testing.assert_array_equal(split.train_images, train_images)
    np.testing.assert_array_equal(split.heldout_images, test_images)


def test_train_command_on_a_tiny_set(tmp_path, capsys):
    fake_set(tmp_path, data.TEST_IMAGES, data.TEST_LABELS, 50)
    out = tmp_path / "digits.torchscript"
    code = main(["mnist", "train", "--data-dir", str(tmp_path), "--epochs", "1", "--device", "cpu", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "index % 5 == 4" in printed and "trace: verified" in printed and "script: verified" in printed
    metadata = load_model(str(out)).metadata
    assert metadata["export"] == "trace"
    assert metadata["training"] == {"data": "mnist-test-split", "description": data.SPLIT_DESCRIPTION,
                                    "train_images": 40, "heldout_images": 10, "seed": 0, "epochs": 1}


def test_train_command_without_out_writes_a_new_run_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "data").mkdir()
    fake_set(tmp_path / "data", data.TEST_IMAGES, data.TEST_LABELS, 20)
    monkeypatch.chdir(tmp_path)
    for expected in ("exp", "exp2"):  # never overwrites: not models/, not the previous run
        assert main(["mnist", "train", "--data-dir", str(tmp_path / "data"), "--epochs", "1", "--device", "cpu"]) == 0
        path = Path("runs") / "mnist" / expected / "mnist.torchscript"
        assert f"wrote {path} " in capsys.readouterr().out
        assert load_model(str(path)).metadata["export"] == "trace"


def test_train_command_without_data_says_so(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert main(["mnist", "train", "--data-dir", str(missing)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0]


TRAINING = {"data": "mnist-test-split", "description": "synthetic", "train_images": 0, "heldout_images": 20,
            "seed": 0, "epochs": 0}
METADATA_KEYS = {"format", "task", "export", "input", "normalize", "labels", "training", "heldout_accuracy",
                 "verification", "torch_version"}


@pytest.mark.parametrize("method", export.EXPORT_METHODS)
def test_untrained_model_exports_and_verifies(tmp_path, method):
    torch.manual_seed(0)
    model = DigitNet(width=4, hidden=8).eval()
    inputs = to_input(np.random.default_rng(0).integers(0, 256, size=(20, 28, 28), dtype=np.uint8))
    labels = torch.zeros(20, dtype=torch.long)
    path = tmp_path / f"{method}.torchscript"
    metadata = export.export_verified(model, method, path, inputs, labels, TRAINING)
    loaded = load_model(str(path))
    module, stored = loaded.module, loaded.metadata
    assert stored == json.loads(json.dumps(metadata))
    assert set(stored) == METADATA_KEYS and stored["export"] == method and stored["format"] == "jitvision/1"
    assert stored["verification"]["argmax_agree"] is True
    assert stored["verification"]["max_abs_logit_diff"] <= export.TOLERANCE
    with torch.no_grad():
        for n in (1, 3, 64):
            assert module(inputs[:1].repeat(n, 1, 1, 1)).shape == (n, 10)


def test_verification_rejects_a_different_model():
    torch.manual_seed(0)
    model = DigitNet(width=4, hidden=8).eval()
    def drifted(x):
        return model(x) + 1e-3

    with pytest.raises(ExportError, match="max abs logit difference"):
        export.verify(model, drifted, torch.randn(10, 1, 28, 28))


def test_photos_are_deterministic_and_do_not_fill_the_frame(tmp_path):
    digit = np.zeros((28, 28), np.uint8)
    cv2.line(digit, (14, 5), (14, 22), 255, 3)
    first = write_digit_photos(np.stack([digit] * 5), np.ones(5), tmp_path / "a", seed=3)
    second = write_digit_photos(np.stack([digit] * 5), np.ones(5), tmp_path / "b", seed=3)
    for (a, _), (b, _) in zip(first, second):
        assert a.read_bytes() == b.read_bytes()
    for seed in range(20):
        photo = make_photo(digit, np.random.default_rng(seed))
        assert 64 <= photo.shape[0] == photo.shape[1] <= 160
        dark = np.nonzero(photo.mean(2) < 128)
        assert max(np.ptp(dark[0]), np.ptp(dark[1])) < 0.8 * photo.shape[0]
        assert np.median(photo) > 128  # dark ink on light paper


def test_reference_normalisation_fits_20x20_and_centres_by_mass():
    canvas = np.full((120, 90), 220, np.uint8)
    cv2.rectangle(canvas, (10, 15), (30, 75), 30, -1)  # a dark bar, tall and off-centre
    out = mnist_style(canvas)
    ys, xs = np.nonzero(out > 0)
    assert np.ptp(ys) + 1 == 20 and np.ptp(xs) + 1 < 20
    cy, cx = (np.average(idx, weights=out[ys, xs]) for idx in (ys, xs))
    assert abs(cy - 13.5) <= 1 and abs(cx - 13.5) <= 1
    assert out.max() == 255 and out[0].max() == 0


def test_samples_are_deterministic(tmp_path):
    first = write_samples(tmp_path / "a", seed=0)
    second = write_samples(tmp_path / "b", seed=0)
    assert len(first) == 30 and sorted(d for _, d in first) == sorted(list(range(10)) * 3)
    assert [p.read_bytes() for p, _ in first] == [p.read_bytes() for p, _ in second]


@pytest.fixture(scope="module")
def heldout(data_dir):
    return data.load_heldout(data_dir / "mnist")


@pytest.fixture(scope="module")
def bundled(repo_root):
    path = repo_root / "models" / "mnist.torchscript"
    assert path.is_file(), f"{path} is missing: rebuild it with `make models`"
    return path


def test_bundled_model_metadata(bundled):
    metadata = load_model(str(bundled)).metadata
    assert set(metadata) == METADATA_KEYS
    assert metadata["task"] == "digits" and metadata["labels"] == [str(i) for i in range(10)]
    assert metadata["input"] == {"shape": [1, 1, 28, 28], "layout": "NCHW", "dtype": "float32",
                                 "polarity": "light-on-dark"}
    assert metadata["normalize"] == {"scale": 255.0, "mean": [0.1307], "std": [0.3081]}
    assert metadata["training"]["data"] in ("mnist-full", "mnist-test-split")
    assert metadata["verification"]["argmax_agree"] is True
    assert metadata["heldout_accuracy"] >= 0.985
    assert bundled.stat().st_size < 2 * 1024 * 1024


def test_bundled_model_heldout_accuracy(bundled, heldout):
    images, labels = heldout
    predictor = DigitPredictor(bundled)
    accuracy = float((predictor.probabilities(images).argmax(1) == labels).mean())
    assert accuracy >= 0.985
    assert accuracy == pytest.approx(predictor.metadata["heldout_accuracy"], abs=1e-6)


def test_predict_cli_matches_the_predictor(tmp_path, repo_root, python_exe, bundled, heldout):
    images = heldout[0][:8]
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        cv2.imwrite(str(paths[-1]), image)
    result = subprocess.run([python_exe, "-m", "jitvision", "mnist", "predict", "--json", *map(str, paths)],
                            cwd=repo_root,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    expected = DigitPredictor(bundled).probabilities(images)
    assert [r["source"] for r in rows] == list(map(str, paths))
    assert [r["digit"] for r in rows] == list(expected.argmax(1))
    np.testing.assert_allclose([r["probs"] for r in rows], expected, atol=1e-6)
