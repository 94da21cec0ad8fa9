"""Live digit reading: the bundled digit detector and `jitvision digits --source` on a freshly generated video."""
import json
import os
import subprocess
import sys

import cv2
import pytest

from jitvision.demo_report import read_jsonl, score


def make_video(repo_root, tmp_path, frames, mnist_dir=None, seed=123):
    video, truth = tmp_path / "scene.mp4", tmp_path / "truth.jsonl"
    env = dict(os.environ)
    env.pop("JITVISION_DATA_DIR", None)
    args = [sys.executable, "-m", "jitvision", "data", "digits-video", "--out", str(video), "--truth", str(truth),
            "--frames", str(frames), "--seed", str(seed)]
    if mnist_dir:
        args += ["--mnist", str(mnist_dir)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    return video, read_jsonl(truth)


@pytest.fixture(scope="module")
def heldout_video(repo_root, data_dir, tmp_path_factory):
    # 120 frames hold 36 different held-out digits (6 on screen, replaced every 20 frames): one hard digit moves
    # the score by ~3 points, not ~17 as in a short clip
    return make_video(repo_root, tmp_path_factory.mktemp("live"), 120, mnist_dir=data_dir / "mnist")


def run_json(run_cli, args):
    proc = run_cli(args)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def test_bundled_detector_finds_heldout_digits(repo_root, run_cli, heldout_video):
    video, truth = heldout_video
    assert truth[0]["digits"].startswith("mnist")
    records, _ = run_json(run_cli, ["detect", "--model", repo_root / "models" / "digits_yolov5n.torchscript",
                                    "--source", video, "--json", "-"])
    assert len(records) == len(truth)
    s = score(records, truth)
    assert s.digits >= 600
    assert s.detector_right >= 0.90 * s.digits, s.line()


def test_two_stage_reading_is_at_least_as_accurate(run_cli, heldout_video, tmp_path):
    video, truth = heldout_video
    saved = tmp_path / "read.mp4"
    records, err = run_json(run_cli, ["digits", "--source", video, "--json", "--save-video", saved])
    assert "read digits" in err
    dets = [d for r in records for d in r["detections"]]
    assert dets and all({"digit", "digit_prob", "conf", "cls", "xyxy"} <= d.keys() for d in dets)
    s = score(records, truth)
    assert s.reader_right >= s.detector_right, s.line()
    cap = cv2.VideoCapture(str(saved))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == len(truth)


def test_live_digits_without_external_data(repo_root, run_cli, tmp_path):
    """The demo's path: a video drawn with fonts, no MNIST files; every frame gets a line with read digits."""
    video, truth = make_video(repo_root, tmp_path, 8, seed=5)
    assert truth[0]["digits"] == "fonts" or "font" in truth[0]["digits"]
    records, _ = run_json(run_cli, ["digits", "--source", video, "--json"])
    assert [r["frame"] for r in records] == list(range(8))
    assert score(records, truth).found > 0


def test_images_and_source_together_is_a_usage_error(run_cli, tmp_path):
    proc = run_cli(["digits", "x.png", "--source", "y.mp4"])
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("jitvision: error:") and len(proc.stderr.strip().splitlines()) == 1
