"""`python -m jitvision` reports errors like the C++ app: one line `jitvision: error: ...` and the README's exit
codes; its extension lists are the app's (as `jitvision --version` prints them)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from jitvision.errors import (
    DeviceError,
    InferenceServerError,
    InputError,
    JitvisionError,
    ModelError,
    OutputError,
    SourceLostError,
    UsageError,
)
from jitvision.extensions import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

REPO_ROOT = Path(__file__).resolve().parents[1]
MNIST = REPO_ROOT / "models" / "mnist.torchscript"
DETECTOR = REPO_ROOT / "models" / "digits_yolov5n.torchscript"


def python_cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jitvision", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def test_exit_codes_are_the_readmes():
    codes = {JitvisionError: 1, UsageError: 2, ModelError: 3, DeviceError: 4, InputError: 5, OutputError: 6,
             SourceLostError: 7, InferenceServerError: 8}
    assert {cls: cls.exit_code for cls in codes} == codes
    readme = (REPO_ROOT / "README.md").read_text()
    for code in codes.values():
        assert f"\n| {code} | " in readme


@pytest.mark.parametrize("args, code, message", [
    (["info", "{tmp}/missing.torchscript"], 3, "does not exist"),
    (["yolov5", "detect", "--model", DETECTOR, "--source", "x.jpg", "--sauce"], 2, "unrecognized arguments: --sauce"),
    (["mnist", "predict", "--model", DETECTOR, "{tmp}/x.png"], 3, "not a digit classifier"),
    (["yolov5", "detect", "--model", DETECTOR, "--source", "{tmp}/missing.jpg"], 5, "does not exist"),
    (["yolov5", "detect", "--model", DETECTOR, "--source", "x.jpg", "--conf", "nan"], 2,
     "argument --conf/--conf-thres: Value nan not a finite number in range [0 - 1]"),
    (["yolov5", "detect", "--model", DETECTOR, "--source", "x.jpg", "--iou=-inf"], 2,
     "argument --iou/--iou-thres: Value -inf not a finite number in range [0 - 1]"),
    (["yolov5", "val", "--weights", DETECTOR, "--data", "d.yaml", "--iou", "nan"], 2, "not a finite number"),
    (["data", "digits-video", "--out", "{tmp}/v.mkv", "--truth", "{tmp}/t.jsonl"], 2, ".mp4 or .avi"),
])
def test_python_cli_errors_are_one_line_with_the_apps_exit_code(tmp_path, args, code, message):
    proc = python_cli(*(str(a).format(tmp=tmp_path) for a in args))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("jitvision: error: ") and message in lines[0]


def test_a_bad_input_is_reported_and_the_others_still_read(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not an image")
    cv2.imwrite(str(tmp_path / "blank.png"), np.zeros((28, 28), np.uint8))
    proc = python_cli("mnist", "predict", "--model", MNIST, tmp_path / "broken.png", tmp_path / "blank.png")
    assert proc.returncode == 5
    assert proc.stdout.startswith(f"{tmp_path / 'blank.png'}: ") and len(proc.stdout.splitlines()) == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("jitvision: error: ") and "broken.png" in lines[0]


def _version_line(stdout: str, label: str) -> list:
    lines = [line for line in stdout.splitlines() if line.startswith(f"{label} extensions: ")]
    assert len(lines) == 1, f"`jitvision --version` prints no single '{label} extensions:' line:\n{stdout}"
    return lines[0].split(": ", 1)[1].split(" ")


def test_extension_lists_equal_the_cpp_apps(run_cli):
    proc = run_cli(["--version"])
    assert proc.returncode == 0, proc.stderr
    assert _version_line(proc.stdout, "image") == sorted(IMAGE_EXTENSIONS)
    assert _version_line(proc.stdout, "video") == sorted(VIDEO_EXTENSIONS)
    assert not IMAGE_EXTENSIONS & VIDEO_EXTENSIONS
