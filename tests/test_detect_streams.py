"""Several sources in one `jitvision detect` run, and live sources that say what happens: loopback MJPEG servers
that serve, die, stall or start late, finite GStreamer pipelines that end by themselves, and the per-source outputs
(JSON fields, one video per source at its own rate, one --save-dir sub-folder per source, one window per source or
one mosaic). Plumbing only: the model finds nothing (empty_detections_model)."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import cv2
import pytest

from _support import MjpegServer, empty_detections_model, moving_frames, read_json_lines, start_xvfb, textured_photo

EXIT_USAGE, EXIT_LOST = 2, 7
LIVE = ["--open-timeout", "2000", "--read-timeout", "500", "--reconnect", "2"]
PROCESS_TIMEOUT_S = 120
FINITE_PIPELINE = "videotestsrc num-buffers=30 ! video/x-raw,width=160,height=120 ! videoconvert ! appsink"


@pytest.fixture(scope="module")
def model() -> Path:
    return empty_detections_model()


@pytest.fixture(scope="module")
def frames():
    return moving_frames(textured_photo(), 50)


def detect_args(model, *sources):
    args = ["detect", "--model", str(model), "--img", "128", "--threads", "1"]
    for s in sources:
        args += ["--source", str(s)]
    return args


def app_env(**changes) -> dict:
    """Without what `import cv2` (opencv-python) put in the environment: its Qt plugin path aborts the app's Qt."""
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR")}
    env.update(changes)
    return env


def write_clip(path: Path, count: int, fps: float, size=(160, 120)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    for frame in moving_frames(textured_photo(), count, size):
        writer.write(frame)
    writer.release()
    return path


def video_facts(path: Path):
    """(frames decoded, declared fps) of a video file."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} is not a readable video"
    fps = capture.get(cv2.CAP_PROP_FPS)
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count, fps


def warnings_of(stderr: str):
    return [line for line in stderr.splitlines() if line.startswith("jitvision: warning: ")]


def errors_of(stderr: str):
    return [line for line in stderr.splitlines() if line.startswith("jitvision: error: ")]


def by_source(rows):
    out = {}
    for row in rows:
        out.setdefault(row["source_index"], []).append(row)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- JSON fields ------------------------------------------------------------------------------------------------------

def test_json_lines_carry_source_index_time_and_video_position(run_cli, model, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", 8, 25)
    out = tmp_path / "out.jsonl"
    before = time.time()
    result = run_cli([*detect_args(model, clip, FINITE_PIPELINE), "--json", out], timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    rows = by_source(read_json_lines(out))
    assert sorted(rows) == [0, 1]
    video, pipeline = rows[0], rows[1]
    assert [r["frame"] for r in video] == list(range(8))
    assert [r["position_ms"] for r in video] == pytest.approx([40.0 * i for i in range(8)], abs=1.0)
    assert all(r["source"] == str(clip) for r in video)
    assert [r["frame"] for r in pipeline] == list(range(30))
    assert all("position_ms" not in r and r["source"] == FINITE_PIPELINE for r in pipeline)
    for row in video + pipeline:
        assert set(row) - {"position_ms"} == {"source", "source_index", "frame", "timestamp", "shape", "detections"}
        assert isinstance(row["timestamp"], float) and before - 1 <= row["timestamp"] <= time.time() + 1


# --- live sources that tell what happens -----------------------------------------------------------------------------

def test_finite_gstreamer_pipeline_ends_by_itself(run_cli, model, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run_cli([*detect_args(model, FINITE_PIPELINE), "--json", out], timeout=60)
    assert result.returncode == 0, result.stderr
    assert [r["frame"] for r in read_json_lines(out)] == list(range(30))
    assert not warnings_of(result.stderr) and not errors_of(result.stderr), result.stderr


def test_a_stalled_stream_says_it_dropped_and_reconnected_and_the_other_goes_on(run_cli, model, frames, tmp_path):
    out = tmp_path / "out.jsonl"
    with MjpegServer(lambda i: frames[i % len(frames)], stall_first_after=3) as stalling, \
            MjpegServer(lambda i: frames[i % len(frames)]) as steady:
        result = run_cli([*detect_args(model, stalling.url, steady.url), *LIVE, "--max-frames", "6", "--json", out],
                         timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    warnings = warnings_of(result.stderr)
    assert any(line.startswith(f"jitvision: warning: stream {stalling.url} dropped (no frame for ")
               for line in warnings), warnings
    assert any(line.startswith(f"jitvision: warning: stream {stalling.url} reconnected (attempt 1 of 2)")
               for line in warnings), warnings
    assert not any(steady.url in line for line in warnings), warnings
    rows = by_source(read_json_lines(out))
    assert len(rows[0]) == 6 and len(rows[1]) == 6


def test_quiet_tells_nothing_of_drops(run_cli, model, frames, tmp_path):
    with MjpegServer(lambda i: frames[i % len(frames)], stall_first_after=3) as server:
        result = run_cli([*detect_args(model, server.url), *LIVE, "--max-frames", "6", "--json", tmp_path / "o.jsonl",
                          "--quiet"], timeout=PROCESS_TIMEOUT_S)
        connections = server.connections
    assert result.returncode == 0, result.stderr
    assert connections >= 2
    assert result.stderr == ""


def test_first_open_is_retried_until_a_late_server_starts(jitvision_bin, model, frames, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/stream.mjpg"
    out = tmp_path / "out.jsonl"
    # back-offs 0.5, 1, 2, 4 s: the server starts once the app has said it will retry
    proc = subprocess.Popen([str(jitvision_bin), *detect_args(model, url), "--open-timeout", "2000",
                             "--read-timeout", "1000", "--reconnect", "4", "--max-frames", "3", "--json", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first_lines = []
        while not any("cannot be opened yet" in line for line in first_lines):
            line = proc.stderr.readline()
            assert line, f"the app ended without retrying: {first_lines}"
            first_lines.append(line.rstrip("\n"))
        with MjpegServer(lambda i: frames[i % len(frames)], port=port):
            _, rest = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = "\n".join(first_lines) + "\n" + rest
    assert proc.returncode == 0, stderr
    assert len(read_json_lines(out)) == 3
    assert first_lines[-1].startswith(f"jitvision: warning: stream {url} cannot be opened yet; retrying in 0.5 s "
                                      "(retry 1 of 4)"), stderr
    assert any(line.startswith(f"jitvision: warning: stream {url} opened (attempt ") for line in warnings_of(stderr))


def test_a_stream_that_never_opens_is_an_input_error_after_its_retries(run_cli, model):
    url = f"http://127.0.0.1:{free_port()}/x.mjpg"
    result = run_cli([*detect_args(model, url), "--open-timeout", "1000", "--reconnect", "2"],
                     timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 5, result.stderr
    errors = errors_of(result.stderr)
    assert len(errors) == 1 and url in errors[0] and "(3 attempts)" in errors[0], errors
    assert len([line for line in warnings_of(result.stderr) if "retrying in" in line]) == 2


# --- several sources --------------------------------------------------------------------------------------------------

def rows_from_streams(run_cli, model, frames, tmp_path, count, fps, max_frames):
    """Runs detect on `count` loopback streams at once, `max_frames` each; their JSON rows by source index."""
    out = tmp_path / "out.jsonl"
    servers = [MjpegServer(lambda i: frames[i % len(frames)], fps=fps) for _ in range(count)]
    try:
        result = run_cli([*detect_args(model, *(s.url for s in servers)), *LIVE, "--max-frames", str(max_frames),
                          "--json", out], timeout=PROCESS_TIMEOUT_S)
    finally:
        for server in servers:
            server.kill()
    assert result.returncode == 0, result.stderr
    return servers, by_source(read_json_lines(out))


def test_several_streams_each_give_their_frames(run_cli, model, frames, tmp_path):
    servers, rows = rows_from_streams(run_cli, model, frames, tmp_path, count=3, fps=20, max_frames=5)
    assert sorted(rows) == [0, 1, 2]
    for index, server in enumerate(servers):
        assert len(rows[index]) == 5
        assert all(r["source"] == server.url for r in rows[index])


def test_streams_are_read_at_the_same_time(run_cli, model, frames, tmp_path):
    """Needs the concurrent capture stage: with sources read one after another, their time spans do not overlap."""
    _, rows = rows_from_streams(run_cli, model, frames, tmp_path, count=2, fps=10, max_frames=15)
    spans = [(min(r["timestamp"] for r in rows[i]), max(r["timestamp"] for r in rows[i])) for i in (0, 1)]
    overlap = min(spans[0][1], spans[1][1]) - max(spans[0][0], spans[1][0])
    assert overlap > 0.5, f"sources read one after another: {spans}"


def test_one_stream_dies_and_the_others_go_on_to_the_end(jitvision_bin, model, frames, tmp_path):
    out = tmp_path / "out.jsonl"
    dying = MjpegServer(lambda i: frames[i % len(frames)], fps=10)
    lasting = MjpegServer(lambda i: frames[i % len(frames)], fps=10)
    proc = subprocess.Popen([str(jitvision_bin), *detect_args(model, dying.url, lasting.url), *LIVE,
                             "--max-frames", "12", "--json", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if len(by_source(read_json_lines(out)).get(0, [])) >= 2:
                break
            time.sleep(0.05)
        dying.kill()
        _, stderr = proc.communicate(timeout=PROCESS_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
        dying.kill()
        lasting.kill()
    assert proc.returncode == EXIT_LOST, stderr
    errors = errors_of(stderr)
    assert len(errors) == 1 and dying.url in errors[0] and "lost" in errors[0], errors
    rows = by_source(read_json_lines(out))
    assert 2 <= len(rows[0]) < 12
    assert [r["frame"] for r in rows[1]] == sorted({r["frame"] for r in rows[1]}) and len(rows[1]) == 12


# --- per-source outputs -----------------------------------------------------------------------------------------------

def test_one_video_per_source_at_each_sources_rate(run_cli, model, frames, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    slow = write_clip(tmp_path / "a" / "clip.avi", 10, 10)
    fast = write_clip(tmp_path / "b" / "clip.avi", 15, 25)
    videos = tmp_path / "videos"
    with MjpegServer(lambda i: frames[i % len(frames)], fps=8) as server:
        result = run_cli([*detect_args(model, slow, fast, server.url), *LIVE, "--max-frames", "24",
                          "--save-video", videos], timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in videos.iterdir()) == ["clip.mp4", "clip_2.mp4", "stream.mp4"]
    assert video_facts(videos / "clip.mp4") == (10, 10.0)
    assert video_facts(videos / "clip_2.mp4") == (15, 25.0)
    count, fps = video_facts(videos / "stream.mp4")
    assert count == 24
    assert 8 * 0.75 <= fps <= 8 * 1.1, f"live stream written at {fps} fps; it arrives at about 8"


def test_a_name_pattern_gives_one_video_per_source_and_keeps_earlier_files(run_cli, model, tmp_path):
    first = write_clip(tmp_path / "first.avi", 4, 10)
    second = write_clip(tmp_path / "second.avi", 5, 10)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "first.avi").write_bytes(b"an earlier run's video")
    result = run_cli([*detect_args(model, first, second), "--save-video", tmp_path / "out" / "{name}.avi"],
                     timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "first.avi").read_bytes() == b"an earlier run's video"
    assert video_facts(tmp_path / "out" / "first_2.avi")[0] == 4
    assert video_facts(tmp_path / "out" / "second.avi")[0] == 5


def test_one_video_file_for_several_sources_is_a_usage_error(run_cli, model, tmp_path):
    clip = write_clip(tmp_path / "clip.avi", 3, 10)
    result = run_cli([*detect_args(model, clip, FINITE_PIPELINE), "--save-video", tmp_path / "all.mp4"],
                     timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == EXIT_USAGE, result.stderr
    errors = errors_of(result.stderr)
    assert len(errors) == 1 and "{name}" in errors[0] and "directory" in errors[0], errors
    assert not (tmp_path / "all.mp4").exists()


def test_save_dir_gets_one_sub_folder_per_source(run_cli, model, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_clip(tmp_path / "a" / "clip.avi", 3, 10)
    second = write_clip(tmp_path / "b" / "clip.avi", 2, 10)
    saved = tmp_path / "saved"
    result = run_cli([*detect_args(model, first, second), "--save-dir", saved], timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in saved.iterdir()) == ["clip", "clip_2"]
    assert sorted(p.name for p in (saved / "clip").iterdir()) == [f"clip_{i:06d}.jpg" for i in range(3)]
    assert sorted(p.name for p in (saved / "clip_2").iterdir()) == [f"clip_{i:06d}.jpg" for i in range(2)]


# --- windows ----------------------------------------------------------------------------------------------------------

@pytest.fixture
def xvfb_display():
    with start_xvfb("xwininfo") as display:
        yield display


def shown_windows(jitvision_bin, model, urls, show, display, expected):
    """{title: (width, height)} of the app's windows, once they are `expected` (frames shown) or after 60 s."""
    env = app_env(DISPLAY=display)
    # --max-frames: the run ends by itself, after every source had its frames shown (also when sources are read
    # one after another)
    proc = subprocess.Popen([str(jitvision_bin), *detect_args(model, *urls), *LIVE, *show, "--quiet",
                             "--max-frames", "30"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    titles = {}
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            tree = subprocess.run(["xwininfo", "-root", "-tree"], env=env, capture_output=True, text=True,
                                  timeout=30).stdout
            titles = {m.group(1): (int(m.group(2)), int(m.group(3)))
                      for m in re.finditer(r'"([^"]*)": \([^)]*\)\s+(\d+)x(\d+)', tree)
                      if m.group(1) in ("jitvision detect", "stream", "stream_2")}
            if titles == expected:
                break
            time.sleep(0.25)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    return titles


def test_show_opens_a_window_per_source_or_one_mosaic(jitvision_bin, model, frames, xvfb_display):
    servers = [MjpegServer(lambda i: frames[i % len(frames)], fps=10) for _ in range(2)]
    try:
        urls = [s.url for s in servers]
        # one window per source, each the size of its frames; the mosaic: two 640x360 tiles side by side
        separate = {"stream": (320, 240), "stream_2": (320, 240)}
        assert shown_windows(jitvision_bin, model, urls, ["--show"], xvfb_display, separate) == separate
        mosaic = {"jitvision detect": (2 * 640, 360)}
        assert shown_windows(jitvision_bin, model, urls, ["--show", "mosaic"], xvfb_display, mosaic) == mosaic
    finally:
        for server in servers:
            server.kill()


def test_show_takes_no_other_value(run_cli, model, tmp_path):
    result = run_cli([*detect_args(model, write_clip(tmp_path / "c.avi", 2, 10)), "--show", "tiles"],
                     timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert "mosaic" in result.stderr
