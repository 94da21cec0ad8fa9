"""Faults the C++ app must survive with one error line and a documented exit code, never a crash: a source file
whose name is not UTF-8 (written to JSON with its invalid bytes as \\xNN, docs/detect.md "Output"), a video
writer that cannot write its file (exit 6, JSON lines kept); and the fixes that came with them: a saved video
keeps its source's frame rate, and `--version` lists the extensions the app reads."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

EXIT_OUTPUT = 6
PROCESS_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def model(repo_root) -> Path:
    return repo_root / "models" / "digits_yolov5n.torchscript"


def noise(seed: int, shape=(96, 128, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_video(path: Path, fps: float, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (128, 96))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(noise(i))
    writer.release()
    return path


def detect(model, *sources, extra=()):
    args = ["detect", "--model", model, "--img", "64", "--threads", "1", "--device", "cpu"]
    for s in sources:
        args += ["--source", s]
    return [*args, *extra]


def error_lines(stderr: str):
    return [line for line in stderr.splitlines() if line.startswith("jitvision: error: ")]


def test_a_source_name_that_is_not_utf8_is_escaped_in_the_json_and_keeps_its_results(run_cli, model, tmp_path):
    name = tmp_path / os.fsdecode(b"caf\xe9-\xff.png")  # Latin-1 bytes: not UTF-8
    cv2.imencode(".png", noise(1))[1].tofile(name)
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), noise(2))
    out = tmp_path / "out.jsonl"
    result = run_cli(detect(model, name, plain, extra=["--json", out, "--quiet"]), timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert error_lines(result.stderr) == []
    rows = [json.loads(line) for line in out.read_bytes().decode("utf-8").splitlines()]
    by_source = {row["source"]: row for row in rows}  # the two sources are read at once: either may come first
    assert sorted(by_source) == sorted([str(tmp_path / "caf\\xe9-\\xff.png"), str(plain)])
    escaped = by_source[str(tmp_path / "caf\\xe9-\\xff.png")]
    assert escaped["shape"] == [96, 128] and isinstance(escaped["detections"], list)


def test_a_non_utf8_name_on_standard_output_too(jitvision_bin, model, tmp_path):
    name = tmp_path / os.fsdecode(b"\xe9t\xe9.png")
    cv2.imencode(".png", noise(3))[1].tofile(name)
    result = subprocess.run([jitvision_bin, *map(str, detect(model, name, extra=["--json", "-", "--quiet"]))],
                            capture_output=True, timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in result.stdout.decode("utf-8").splitlines()]
    assert row["source"] == str(tmp_path / "\\xe9t\\xe9.png")


def test_digits_json_escapes_a_non_utf8_name(run_cli, tmp_path):
    name = tmp_path / os.fsdecode(b"digit-\xb7.png")
    digit = np.full((28, 28), 255, np.uint8)
    cv2.line(digit, (14, 4), (14, 24), 0, 3)
    cv2.imencode(".png", digit)[1].tofile(name)
    result = run_cli(["digits", "--json", name])
    assert result.returncode == 0, result.stderr
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert row["source"] == str(tmp_path / "digit-\\xb7.png")
    assert 0 <= row["digit"] <= 9


def test_a_video_writer_that_cannot_write_gives_one_error_and_keeps_the_json(run_cli, model, tmp_path):
    clip = write_video(tmp_path / "clip.avi", 10, 4)
    taken = tmp_path / "taken.mp4"
    taken.mkdir()  # a directory where the video file should go: the writer cannot open it
    out = tmp_path / "out.jsonl"
    result = run_cli(detect(model, clip, extra=["--json", out, "--save-video", taken]), timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == EXIT_OUTPUT, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and "cannot write video" in errors[0] and str(taken) in errors[0], result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["frame"] for row in rows] == [0]  # written before its video frame failed
    assert any("frames from" in line for line in result.stderr.splitlines()), "the summary is still printed"


def test_a_saved_video_keeps_its_sources_frame_rate(run_cli, model, tmp_path):
    clip = write_video(tmp_path / "clip12.avi", 12, 6)
    saved = tmp_path / "saved.mp4"
    result = run_cli(detect(model, clip, extra=["--save-video", saved, "--quiet"]), timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    capture = cv2.VideoCapture(str(saved))
    assert capture.isOpened()
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0, abs=0.01)
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 6


def test_version_lists_the_image_and_video_extensions(run_cli):
    result = run_cli(["--version"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "image extensions: .bmp .jp2 .jpeg .jpg .pbm .pgm .png .ppm .tif .tiff .webp" in lines
    assert "video extensions: .avi .flv .gif .m4v .mjpeg .mkv .mov .mp4 .mpeg .mpg .ts .webm .wmv" in lines


@pytest.mark.parametrize("command", [["detect", "--model", "m.torchscript"], ["digits"]])
@pytest.mark.parametrize("flag, value", [("--conf", "nan"), ("--iou", "nan"), ("--iou", "-nan"), ("--conf", "inf"),
                                         ("--iou", "1.5")])
def test_a_threshold_that_is_not_a_finite_number_from_0_to_1_is_a_usage_error(run_cli, command, flag, value):
    # CLI::Range alone lets NaN through, and a NaN --iou would turn NMS off: refused before anything opens.
    proc = run_cli([*command, "--source", "missing.mp4", f"{flag}={value}"])
    assert proc.returncode == 2, proc.stderr
    assert error_lines(proc.stderr) == proc.stderr.strip().splitlines()
    assert len(error_lines(proc.stderr)) == 1 and "not a finite number in range [0 - 1]" in proc.stderr


def test_a_webp_image_is_read(run_cli, model, tmp_path):
    # imdecode's WebP decoder takes only unsigned bytes: a char buffer (CV_8S) made every .webp unreadable.
    image = tmp_path / "noise.webp"
    assert cv2.imwrite(str(image), noise(3))
    out = tmp_path / "out.jsonl"
    result = run_cli(detect(model, image, extra=["--json", out, "--quiet"]), timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(row["source"], row["shape"]) for row in rows] == [(str(image), [96, 128])]
