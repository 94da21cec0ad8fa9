"""Stops always work: an image input that is not a regular file (a FIFO named like an image, a character device such
as /dev/zero) is refused with the input error (exit 5) instead of blocking forever, and a second SIGINT/SIGTERM
while a stopped run is still draining ends the process at once with 128 + the signal (README "Exit codes")."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from _support import read_json_lines, wait_for_lines

EXIT_USAGE = 2
EXIT_INPUT = 5
BOUND_S = 60  # a refused FIFO must not block: the whole run ends well within this
PROMPT_S = 5  # a second signal ends the process within this


@pytest.fixture(scope="module")
def model(repo_root) -> Path:
    return repo_root / "models" / "digits_yolov5n.torchscript"


def noise(seed: int, shape=(96, 128, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def error_lines(stderr: str):
    return [line for line in stderr.splitlines() if line.startswith("jitvision: error: ")]


@pytest.fixture
def fifo_image(tmp_path) -> Path:
    path = tmp_path / "f.jpg"
    os.mkfifo(path)
    return path


def test_detect_refuses_a_fifo_and_a_device_and_still_reads_the_good_image(run_cli, model, fifo_image, tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), noise(1))
    out = tmp_path / "out.jsonl"
    args = ["detect", "--model", model, "--img", "64", "--threads", "1", "--device", "cpu", "--json", out, "--quiet"]
    for source in (fifo_image, "/dev/zero", good):
        args += ["--source", source]
    result = run_cli(args, timeout=BOUND_S)
    assert result.returncode == EXIT_INPUT, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 2, result.stderr
    # The sources are read at once: their error lines come in either order.
    for name in (str(fifo_image), "/dev/zero"):
        assert sum(name in e and "not a regular file" in e for e in errors) == 1, result.stderr
    assert [row["source"] for row in read_json_lines(out)] == [str(good)]


def test_an_output_on_a_fifo_input_is_still_refused_as_overwriting_it(run_cli, model, fifo_image, tmp_path):
    args = ["detect", "--model", model, "--source", fifo_image, "--device", "cpu", "--json", fifo_image]
    result = run_cli(args, timeout=BOUND_S)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert len(error_lines(result.stderr)) == 1, result.stderr


def test_digits_refuses_a_fifo_and_still_reads_the_good_image(run_cli, fifo_image, tmp_path):
    good = tmp_path / "digit.png"
    digit = np.full((28, 28), 255, np.uint8)
    cv2.line(digit, (14, 4), (14, 24), 0, 3)
    cv2.imwrite(str(good), digit)
    link = tmp_path / "link.png"  # a symlink is followed: what counts is what it points to
    link.symlink_to(fifo_image)
    result = run_cli(["digits", "--json", fifo_image, link, good], timeout=BOUND_S)
    assert result.returncode == EXIT_INPUT, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 2 and all("not a regular file" in e for e in errors), result.stderr
    assert [json.loads(line)["source"] for line in result.stdout.splitlines()] == [str(good)]


def write_video(path: Path, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (128, 96))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(noise(i))
    writer.release()
    return path


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_second_signal_ends_a_draining_run_at_once(jitvision_bin, model, tmp_path, sig):
    video = write_video(tmp_path / "long.avi", 200)
    out = tmp_path / "out.jsonl"
    args = ["detect", "--model", model, "--source", video, "--img", "2560", "--threads", "1", "--device", "cpu",
            "--json", out]
    proc = subprocess.Popen([str(jitvision_bin), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert wait_for_lines(out, 1, 120, proc) >= 1, "no frame was processed"
        proc.send_signal(sig)  # the first: a clean stop, which waits for the forwards in flight
        time.sleep(0.1)
        assert proc.poll() is None, "the run ended before the second signal: the test needs a slower forward"
        proc.send_signal(sig)
        started = time.monotonic()
        _, stderr = proc.communicate(timeout=PROMPT_S)
        assert time.monotonic() - started < PROMPT_S
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + sig, stderr
    assert "second stop signal" in stderr
    assert len(read_json_lines(out)) >= 1  # every line already written is whole JSON
