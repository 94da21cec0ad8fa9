"""`jitvision digits` end to end: MNIST digits as PNGs and as photos, output formats, globs, help and version."""
from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from jitvision.mnist.data import load_heldout
from jitvision.mnist.normalize import mnist_style
from jitvision.mnist.photos import write_digit_photos, write_digit_pngs
from jitvision.mnist.predict import DigitPredictor
from jitvision.samples import write_samples

COUNT = 500
TEXT_LINE = re.compile(r"^(?P<path>.+): (?P<digit>\d) \(prob (?P<prob>[01]\.\d{4})\)$")


def run_json(run_cli, *inputs) -> list[dict]:
    result = run_cli(["digits", "--json", *inputs])
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    for row in rows:
        assert set(row) == {"source", "digit", "prob", "probs"}
        assert len(row["probs"]) == 10 and sum(row["probs"]) == pytest.approx(1, abs=1e-3)
        assert row["digit"] == int(np.argmax(row["probs"])) and row["prob"] == pytest.approx(max(row["probs"]))
    return rows


def accuracy(rows: list[dict], written: list[tuple[Path, int]]) -> float:
    by_name = {Path(r["source"]).name: r["digit"] for r in rows}
    assert sorted(by_name) == sorted(p.name for p, _ in written), "every image gets exactly one result"
    return float(np.mean([by_name[p.name] == label for p, label in written]))


@pytest.fixture(scope="module")
def heldout500(data_dir):
    images, labels = load_heldout(data_dir / "mnist")
    return images[:COUNT], labels[:COUNT]


@pytest.fixture(scope="module")
def png_dir(heldout500, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist_png")
    return folder, write_digit_pngs(*heldout500, folder)


@pytest.fixture(scope="module")
def png_rows(run_cli, png_dir):
    return run_json(run_cli, png_dir[0])


def test_heldout_pngs_accuracy(png_rows, png_dir):
    assert accuracy(png_rows, png_dir[1]) >= 0.98


def test_heldout_pngs_agree_with_python_torchscript(png_rows, png_dir, heldout500, repo_root):
    python_digits = DigitPredictor(repo_root / "models" / "mnist.torchscript").probabilities(heldout500[0]).argmax(1)
    by_name = {Path(r["source"]).name: r["digit"] for r in png_rows}
    cpp_digits = [by_name[p.name] for p, _ in png_dir[1]]
    agreement = float(np.mean(np.array(cpp_digits) == python_digits))
    assert agreement >= 0.998, f"C++ and Python agree on only {agreement:.3%} of {COUNT} digits"


def test_photos_lose_at_most_three_points(run_cli, heldout500, png_rows, png_dir, tmp_path):
    written = write_digit_photos(*heldout500, tmp_path, seed=0)
    photo_accuracy = accuracy(run_json(run_cli, tmp_path), written)
    png_accuracy = accuracy(png_rows, png_dir[1])
    assert photo_accuracy >= png_accuracy - 0.03, f"photos {photo_accuracy:.3f} vs PNGs {png_accuracy:.3f}"


def test_text_output(run_cli, png_dir, png_rows):
    files = [p for p, _ in png_dir[1][:5]]
    result = run_cli(["digits", *files])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(files)
    json_digits = {Path(r["source"]).name: r for r in png_rows}
    for line, path in zip(lines, files):
        match = TEXT_LINE.match(line)
        assert match, f"not `PATH: DIGIT (prob P)`: {line!r}"
        assert match["path"] == str(path)
        assert int(match["digit"]) == json_digits[path.name]["digit"]
        assert float(match["prob"]) == pytest.approx(json_digits[path.name]["prob"], abs=5e-5)


def test_glob_is_expanded_by_the_program(run_cli, png_dir):
    folder, written = png_dir
    rows = run_json(run_cli, f"{folder}/0000*.png")  # passed without a shell: the program expands it
    assert [Path(r["source"]).name for r in rows] == [p.name for p, _ in written[:10]]


def test_directory_is_read_in_name_order(png_rows, png_dir):
    assert [Path(r["source"]).name for r in png_rows] == sorted(p.name for p, _ in png_dir[1])


def test_generated_samples_are_recognised(run_cli, tmp_path):
    written = write_samples(tmp_path)
    assert accuracy(run_json(run_cli, tmp_path), written) >= 0.8


def test_version_names_its_libraries(run_cli):
    result = run_cli(["--version"])
    assert result.returncode == 0, result.stderr
    text = result.stdout.lower()
    for name in ("libtorch", "opencv", "cuda"):
        assert name in text, f"`jitvision --version` does not mention {name}: {result.stdout!r}"


def test_help_lists_the_digits_command(run_cli):
    result = run_cli(["--help"])
    assert result.returncode == 0, result.stderr
    assert "digits" in result.stdout


def test_digits_help_lists_its_options(run_cli):
    result = run_cli(["digits", "--help"])
    assert result.returncode == 0, result.stderr
    for option in ("--model", "--device", "--json"):
        assert option in result.stdout


def test_photos_agree_with_the_python_reference_normalisation(run_cli, heldout500, tmp_path):
    """The C++ normaliser and its Python reference (mnist_style) read the same photos the same way."""
    written = write_digit_photos(*heldout500, tmp_path, seed=1)
    by_name = {Path(r["source"]).name: r for r in run_json(run_cli, tmp_path)}
    predictor = DigitPredictor(Path(__file__).resolve().parents[1] / "models" / "mnist.torchscript")
    images = np.stack([mnist_style(cv2.imread(str(p))) for p, _ in written])
    probs = predictor.probabilities(images)
    cpp = np.array([by_name[p.name]["digit"] for p, _ in written])
    agreement = float(np.mean(cpp == probs.argmax(1)))
    assert agreement >= 0.998, f"C++ and Python normalisation agree on only {agreement:.3%} of the photos"
    cpp_probs = np.array([by_name[p.name]["prob"] for p, _ in written])
    assert np.median(np.abs(cpp_probs - probs.max(1))) < 1e-3
