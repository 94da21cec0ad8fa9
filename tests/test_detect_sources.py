"""`jitvision detect` on every kind of source: video files frame for frame, live MJPEG streams that stall and die
(served by the test), SIGINT during a stream, the window under Xvfb, and the bad inputs and outputs each with its
exit code and one clear line.

Exit codes (README "Exit codes"): 0 ok, 3 model, 5 input, 6 output, 7 live source lost."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from _support import (
    CLASS_COLOUR_BGR,
    MjpegServer,
    empty_detections_model,
    moving_frames,
    read_json_lines,
    start_xvfb,
    textured_photo,
    video_frame_count,
    wait_for_lines,
)

EXIT_MODEL, EXIT_INPUT, EXIT_OUTPUT, EXIT_LOST = 3, 5, 6, 7
# Live-source settings for the tests: short, so a dead stream is given up quickly.
LIVE = ["--open-timeout", "2000", "--read-timeout", "500", "--reconnect", "2"]
PROCESS_TIMEOUT_S = 120  # a hung process fails the test instead of blocking the run


@pytest.fixture(scope="module")
def model() -> Path:
    return empty_detections_model()


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return textured_photo()


def app_env(**changes) -> dict:
    """The environment for the binary, without what `import cv2` (opencv-python) put there: its Qt plugin path
    would make the app's Qt load the wheel's plugins and abort."""
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR")}
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


def detect_args(model, *sources, img: int = 128):
    args = ["detect", "--model", str(model), "--img", str(img), "--threads", "1"]
    for s in sources:
        args += ["--source", str(s)]
    return args


def start(jitvision_bin, args, **kw) -> subprocess.Popen:
    return subprocess.Popen([str(jitvision_bin), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


PER_FRAME_LINE = re.compile(r"^(image|video|stream) \d+/\d+ ")  # the per-frame console lines (docs/detect.md)


def stderr_lines(stderr: str):
    lines = [line for line in stderr.splitlines() if line.strip() and not PER_FRAME_LINE.match(line)]
    noise = [line for line in lines if not line.startswith("jitvision: ")]
    assert not noise, f"stderr lines not from jitvision: {noise!r}"
    return lines


def errors_of(stderr: str):
    return [line for line in stderr_lines(stderr) if line.startswith("jitvision: error: ")]


def assert_summary(stderr: str) -> None:
    summary = [line for line in stderr_lines(stderr) if not line.startswith(("jitvision: error:",
                                                                             "jitvision: warning:"))]
    assert any("frames" in line for line in summary), stderr
    assert any("FPS" in line for line in summary), stderr


def assert_frame_schema(row: dict, source: str, shape, video: bool = False) -> None:
    fields = {"source", "source_index", "frame", "timestamp", "shape", "detections"}
    assert set(row) == (fields | {"position_ms"} if video else fields)
    assert row["source"] == source and row["source_index"] == 0
    assert isinstance(row["timestamp"], float) and abs(row["timestamp"] - time.time()) < 600
    assert isinstance(row["frame"], int) and row["frame"] >= 0
    assert row["shape"] == list(shape)
    assert isinstance(row["detections"], list)


def assert_one_error(result, code: int, *mentions) -> str:
    assert result.returncode >= 0, f"killed by signal {-result.returncode}"
    assert result.returncode == code, f"exit {result.returncode}, expected {code}; stderr: {result.stderr!r}"
    errors = errors_of(result.stderr)
    assert len(errors) == 1, f"expected one error line, got {errors!r}"
    for text in mentions:
        assert str(text) in errors[0], f"{text!r} not named in {errors[0]!r}"
    return errors[0]


# --- video files ----------------------------------------------------------------------------------------------------

def test_video_file_gives_one_line_per_frame_and_a_readable_video(run_cli, model, photo, tmp_path):
    frames = moving_frames(photo, 30)
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
    for frame in frames:
        writer.write(frame)
    writer.release()
    out = tmp_path / "annotated.mp4"
    result = run_cli([*detect_args(model, clip), "--json", "-", "--save-video", out], timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in rows] == list(range(30))
    for row in rows:
        assert_frame_schema(row, str(clip), (240, 320), video=True)
    assert [r["position_ms"] for r in rows] == pytest.approx([40.0 * i for i in range(30)], abs=1.0)
    assert_summary(result.stderr)
    assert video_frame_count(out) == (30, (240, 320))


# --- live MJPEG streams ---------------------------------------------------------------------------------------------

def test_stream_frames_are_processed(run_cli, model, photo, tmp_path):
    frames = moving_frames(photo, 50)
    out = tmp_path / "out.jsonl"
    with MjpegServer(lambda i: frames[i % len(frames)]) as server:
        result = run_cli([*detect_args(model, server.url), *LIVE, "--max-frames", "5", "--json", out],
                         timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    rows = read_json_lines(out)
    assert len(rows) == 5
    for row in rows:
        assert_frame_schema(row, server.url, (240, 320))
    indices = [r["frame"] for r in rows]
    assert indices == sorted(set(indices)), "frames repeated or out of order"
    assert_summary(result.stderr)


def test_stalled_stream_times_out_and_reconnects(run_cli, model, photo, tmp_path):
    frames = moving_frames(photo, 50)
    out = tmp_path / "out.jsonl"
    # The first connection sends 3 frames and then nothing; the app must time out and open a second one.
    with MjpegServer(lambda i: frames[i % len(frames)], stall_first_after=3) as server:
        result = run_cli([*detect_args(model, server.url), *LIVE, "--max-frames", "6", "--json", out],
                         timeout=PROCESS_TIMEOUT_S)
        connections = server.connections
    assert result.returncode == 0, result.stderr
    assert connections >= 2
    rows = read_json_lines(out)
    assert len(rows) == 6
    indices = [r["frame"] for r in rows]
    assert indices == sorted(set(indices)), "frame indices must keep counting across the reconnect"


def test_dead_stream_exits_7_within_the_bound_with_output_flushed(jitvision_bin, model, photo, tmp_path):
    frames = moving_frames(photo, 50)
    out = tmp_path / "out.jsonl"
    server = MjpegServer(lambda i: frames[i % len(frames)])
    proc = start(jitvision_bin, [*detect_args(model, server.url), *LIVE, "--json", out])
    try:
        assert wait_for_lines(out, 2, 60, proc) >= 2, "no frames from the live stream"
        server.kill()
        killed = time.monotonic()
        _, stderr = proc.communicate(timeout=PROCESS_TIMEOUT_S)
        took = time.monotonic() - killed
    finally:
        if proc.poll() is None:
            proc.kill()
        server.kill()
    # read timeout + back-offs (0.5 s, 1 s) + attempts x (open + read timeout), plus slack for a loaded machine
    bound = 0.5 + (0.5 + 1.0) + 2 * (2.0 + 0.5)
    assert proc.returncode == EXIT_LOST, stderr
    assert took < bound + 3.0, f"gave up after {took:.1f} s (bound {bound:.1f} s)"
    errors = errors_of(stderr)
    assert len(errors) == 1 and "lost" in errors[0] and server.url in errors[0], errors
    rows = read_json_lines(out)
    assert len(rows) >= 2
    for row in rows:
        assert_frame_schema(row, server.url, (240, 320))
    assert_summary(stderr)


def test_sigint_during_a_stream_stops_cleanly(jitvision_bin, model, photo, tmp_path):
    frames = moving_frames(photo, 50)
    out, video = tmp_path / "out.jsonl", tmp_path / "out.avi"
    with MjpegServer(lambda i: frames[i % len(frames)]) as server:
        proc = start(jitvision_bin, [*detect_args(model, server.url), *LIVE, "--json", out, "--save-video", video])
        try:
            assert wait_for_lines(out, 3, 60, proc) >= 3, "no frames from the live stream"
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, stderr
    assert not errors_of(stderr), stderr
    assert_summary(stderr)
    rows = read_json_lines(out)
    assert len(rows) >= 3
    count, shape = video_frame_count(video)
    assert (count, shape) == (len(rows), (240, 320)), "the video must hold every frame written to JSON"


# --- the window -----------------------------------------------------------------------------------------------------

def test_show_without_a_display_is_an_output_error(run_cli, model, photo, tmp_path):
    image = tmp_path / "photo.jpg"
    cv2.imwrite(str(image), photo)
    result = run_cli([*detect_args(model, image), "--show"], env=app_env(DISPLAY=None, WAYLAND_DISPLAY=None),
                     timeout=PROCESS_TIMEOUT_S)
    assert_one_error(result, EXIT_OUTPUT, "display")


@pytest.fixture
def xvfb_display():
    with start_xvfb("import") as display:
        yield display


def test_show_under_xvfb_draws_boxes(jitvision_bin, yolov5n_exports, data_dir, xvfb_display, tmp_path):
    bus = cv2.imread(str(data_dir / "images" / "bus.jpg"))
    out, shot = tmp_path / "out.jsonl", tmp_path / "shot.png"
    env = app_env(DISPLAY=xvfb_display)
    with MjpegServer(lambda i: bus, fps=10) as server:
        proc = start(jitvision_bin, [*detect_args(yolov5n_exports["dynamic"], server.url, img=320), *LIVE,
                                     "--show", "--json", out], env=env)
        try:
            assert wait_for_lines(out, 2, 60, proc) >= 2, proc.stderr.read() if proc.poll() is not None else ""
            found = {}
            classes = {d["cls"] for d in read_json_lines(out)[-1]["detections"]} & set(CLASS_COLOUR_BGR)
            assert classes, "bus.jpg should give persons or a bus"
            for _ in range(20):  # the window may take a moment to be mapped
                subprocess.run(["import", "-window", "root", str(shot)], env=env, check=True, timeout=30)
                screen = cv2.imread(str(shot))
                found = {c: int(np.all(screen == CLASS_COLOUR_BGR[c], axis=-1).sum()) for c in classes}
                if all(n > 200 for n in found.values()):
                    break
                time.sleep(0.25)
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
    untouched = {c: int(np.all(bus == CLASS_COLOUR_BGR[c], axis=-1).sum()) for c in classes}
    assert all(found[c] > 200 and found[c] > 10 * untouched[c] for c in classes), (found, untouched)


# --- bad inputs and outputs -----------------------------------------------------------------------------------------

def test_camera_that_does_not_exist(run_cli, model):
    result = run_cli([*detect_args(model, "9"), "--reconnect", "0"], timeout=PROCESS_TIMEOUT_S)
    assert_one_error(result, EXIT_INPUT, "camera 9")


def test_unreachable_url(run_cli, model):
    url = "http://127.0.0.1:1/x.mjpg"
    started = time.monotonic()
    result = run_cli([*detect_args(model, url), "--open-timeout", "1000", "--read-timeout", "500", "--reconnect", "1"],
                     timeout=PROCESS_TIMEOUT_S)
    assert_one_error(result, EXIT_INPUT, url)
    assert time.monotonic() - started < 30


def test_malformed_gstreamer_pipeline(run_cli, model):
    result = run_cli(detect_args(model, "videotestsrc ! nonexistentelement ! appsink"), timeout=PROCESS_TIMEOUT_S)
    assert_one_error(result, EXIT_INPUT, "GStreamer")


def test_unreadable_image_among_good_ones(run_cli, model, photo, tmp_path):
    cv2.imwrite(str(tmp_path / "a.jpg"), photo)
    (tmp_path / "b.jpg").write_text("not an image")
    cv2.imwrite(str(tmp_path / "c.jpg"), photo)
    result = run_cli([*detect_args(model, tmp_path), "--json", "-"], timeout=PROCESS_TIMEOUT_S)
    # One bad frame is skipped, not its source: a warning, an error record in its place, exit 5.
    assert result.returncode == EXIT_INPUT, result.stderr
    assert not errors_of(result.stderr)
    warnings = [line for line in stderr_lines(result.stderr) if line.startswith("jitvision: warning: skipped: ")]
    assert len(warnings) == 1 and "b.jpg" in warnings[0], result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in rows] == [str(tmp_path / n) for n in ("a.jpg", "b.jpg", "c.jpg")]
    assert "detections" in rows[0] and "detections" in rows[2]
    assert set(rows[1]) == {"source", "source_index", "frame", "error"} and "not a readable image" in rows[1]["error"]


@pytest.mark.parametrize("where", ["/proc/forbidden", "a-file"])
def test_unwritable_save_dir(run_cli, model, photo, tmp_path, where):
    image = tmp_path / "photo.jpg"
    cv2.imwrite(str(image), photo)
    save_dir = where if where.startswith("/") else tmp_path / where
    if not str(save_dir).startswith("/proc"):
        Path(save_dir).write_text("a file, not a directory")
    result = run_cli([*detect_args(model, image), "--save-dir", save_dir], timeout=PROCESS_TIMEOUT_S)
    assert_one_error(result, EXIT_OUTPUT, save_dir)


def test_mnist_model_is_a_model_error(run_cli, repo_root, photo, tmp_path):
    image = tmp_path / "photo.jpg"
    cv2.imwrite(str(image), photo)
    mnist = repo_root / "models" / "mnist.torchscript"
    result = run_cli(detect_args(mnist, image), timeout=PROCESS_TIMEOUT_S)
    assert_one_error(result, EXIT_MODEL, mnist)


def test_img_not_a_multiple_of_the_stride_is_rounded_up(run_cli, model, photo, tmp_path):
    image = tmp_path / "photo.jpg"
    cv2.imwrite(str(image), photo)
    result = run_cli([*detect_args(model, image, img=650), "--json", "-"], timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in stderr_lines(result.stderr) if line.startswith("jitvision: warning: ")]
    assert len(warnings) == 1 and "rounded up to 672" in warnings[0], warnings
    assert len(result.stdout.splitlines()) == 1
