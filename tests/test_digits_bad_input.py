"""`jitvision digits` on bad models, bad inputs and a missing GPU: the documented exit code, one clear line on
stderr, no crash, and results for the good images given alongside the bad ones."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from jitvision.mnist.model import DigitNet
from jitvision.samples import write_samples

EXIT_MODEL = 3
EXIT_DEVICE = 4
EXIT_INPUT = 5


@pytest.fixture(scope="module")
def good_image(tmp_path_factory):
    path, _ = write_samples(tmp_path_factory.mktemp("good"))[0]
    return path


def assert_one_error(result, code: int, *mentions) -> str:
    assert result.returncode >= 0, f"killed by signal {-result.returncode}"
    assert result.returncode == code, f"exit {result.returncode}, expected {code}; stderr: {result.stderr!r}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    assert lines[0].startswith("jitvision: error: ") and len(lines[0]) > len("jitvision: error: ")
    for text in mentions:
        assert str(text) in lines[0], f"{text!r} not named in {lines[0]!r}"
    return lines[0]


def assert_good_image_reported(result, good_image) -> None:
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in rows] == [str(good_image)]
    assert 0 <= rows[0]["digit"] <= 9


def run_model(run_cli, model, good_image):
    return run_cli(["digits", "--json", "--model", model, good_image])


def test_missing_model(run_cli, tmp_path, good_image):
    model = tmp_path / "no-such-model.torchscript"
    assert_one_error(run_model(run_cli, model, good_image), EXIT_MODEL, model)


def test_truncated_model(run_cli, tmp_path, good_image, repo_root):
    whole = (repo_root / "models" / "mnist.torchscript").read_bytes()
    model = tmp_path / "truncated.torchscript"
    model.write_bytes(whole[:len(whole) // 2])
    assert_one_error(run_model(run_cli, model, good_image), EXIT_MODEL, model)


def test_random_bytes_model(run_cli, tmp_path, good_image):
    model = tmp_path / "random.torchscript"
    model.write_bytes(np.random.default_rng(0).bytes(100_000))
    assert_one_error(run_model(run_cli, model, good_image), EXIT_MODEL, model)


def test_state_dict_instead_of_torchscript(run_cli, tmp_path, good_image):
    model = tmp_path / "weights.pt"
    torch.save(DigitNet().state_dict(), model)
    line = assert_one_error(run_model(run_cli, model, good_image), EXIT_MODEL, model)
    assert "state_dict" in line or "state dict" in line.lower()


def missing_image(folder):
    return folder / "missing.png"


def text_file_named_png(folder):
    path = folder / "notes.png"
    path.write_text("this is not an image\n")
    return path


def zero_byte_image(folder):
    path = folder / "empty.png"
    path.touch()
    return path


def empty_directory(folder):
    path = folder / "nothing-here"
    path.mkdir()
    return path


@pytest.mark.parametrize("make_bad_input", [missing_image, text_file_named_png, zero_byte_image, empty_directory],
                         ids=lambda make: make.__name__.replace("_", "-"))
def test_bad_input_is_reported_and_good_image_still_read(run_cli, tmp_path, good_image, make_bad_input):
    bad = make_bad_input(tmp_path)
    result = run_cli(["digits", "--json", bad, good_image])
    assert_one_error(result, EXIT_INPUT, bad)
    assert_good_image_reported(result, good_image)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_requested_without_gpu(run_cli, good_image):
    line = assert_one_error(run_cli(["digits", "--device", "cuda", good_image]), EXIT_DEVICE)
    assert "cuda" in line.lower()
