"""`jitvision detect` with several sources: all read at once (each in its own order), batched across sources with the
same results as one frame at a time, --sources FILE, the per-source summary lines, and a source that cannot be
opened while the others run to their end.

Tolerances (issue [F] #12): batched results equal unbatched ones: same classes, boxes within 0.5 px."""
import json
import re
import shutil

import cv2
import numpy as np
import pytest

BOX_TOL_PX = 0.5
EXIT_USAGE, EXIT_INPUT = 2, 5
VIDEO_FRAMES = 6


def pan_video(photo, path, frames):
    """`frames` 640x480 crops panning over `photo` (MJPG: every reader decodes the same pixels)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for i in range(frames):
        writer.write(np.ascontiguousarray(photo[100 + 8 * i:580 + 8 * i, 200 + 40 * i:840 + 40 * i]))
    writer.release()
    return path


@pytest.fixture(scope="module")
def sources(data_dir, tmp_path_factory):
    """Two copies of a short video (4:3) and a directory of two photos (one portrait, one landscape): three
    input shapes, so batches form only of frames that share one."""
    root = tmp_path_factory.mktemp("sources")
    photo = cv2.imread(str(data_dir / "images" / "zidane.jpg"))
    first = pan_video(photo, root / "cam1.avi", VIDEO_FRAMES)
    second = root / "cam2.avi"
    shutil.copy(first, second)
    photos = root / "photos"
    photos.mkdir()
    for name in ("bus.jpg", "zidane.jpg"):
        shutil.copy(data_dir / "images" / name, photos / name)
    return [first, second, photos]


def detect(run_cli, model, sources, *extra):
    args = ["detect", "--model", model, "--img", "320", "--json", "-"]
    for s in sources:
        args += ["--source", s]
    proc = run_cli([*args, *extra])
    return proc, [json.loads(line) for line in proc.stdout.splitlines()]


def by_frame(records):
    return {(r["source"], r["frame"]): r for r in records}


def source_lines(stderr):
    """{index: (name, read, processed, dropped, reconnects, end)} from the per-source summary lines."""
    pattern = re.compile(r"^jitvision: source (\d+) (.+): (\d+) read, (\d+) processed, (\d+) dropped, (\d+) "
                         r"reconnects?, [\d.]+ FPS, (.+)$")
    found = {}
    for line in stderr.splitlines():
        m = pattern.match(line)
        if m:
            i, name, read, processed, dropped, reconnects, end = m.groups()
            found[int(i)] = (name, int(read), int(processed), int(dropped), int(reconnects), end)
    return found


def test_every_source_is_read_at_once_each_in_its_own_order(run_cli, yolov5n_exports, sources):
    proc, records = detect(run_cli, yolov5n_exports["dynamic"], sources, "--batch", "4")
    assert proc.returncode == 0, proc.stderr
    cam1, cam2, photos = (str(s) for s in sources)
    frames_of = {name: [r["frame"] for r in records if r["source"] == name] for name in (cam1, cam2)}
    assert frames_of[cam1] == list(range(VIDEO_FRAMES))
    assert frames_of[cam2] == list(range(VIDEO_FRAMES))
    assert [r["source"] for r in records if r["source"].startswith(photos)] == [
        str(sources[2] / "bus.jpg"), str(sources[2] / "zidane.jpg")]
    # Concurrent, not one after another: the second video's first frame comes out before the first video's last.
    order = [(r["source"], r["frame"]) for r in records]
    assert order.index((cam2, 0)) < order.index((cam1, VIDEO_FRAMES - 1)), order
    assert "batch 3" in proc.stderr  # --batch 4, but one frame per source: 3 at most
    lines = source_lines(proc.stderr)
    assert lines[0] == (cam1, VIDEO_FRAMES, VIDEO_FRAMES, 0, 0, "ended"), proc.stderr
    assert lines[1] == (cam2, VIDEO_FRAMES, VIDEO_FRAMES, 0, 0, "ended"), proc.stderr
    assert lines[2][1:] == (2, 2, 0, 0, "ended"), proc.stderr


def test_batched_results_equal_unbatched_ones(run_cli, yolov5n_exports, sources):
    model = yolov5n_exports["dynamic"]
    proc_b, batched = detect(run_cli, model, sources, "--batch", "4")
    proc_1, single = detect(run_cli, model, sources, "--batch", "1")
    assert proc_b.returncode == 0 and proc_1.returncode == 0, proc_b.stderr + proc_1.stderr
    assert "batch" not in proc_1.stderr.splitlines()[-4]  # the first summary line names no batch with --batch 1
    batched, single = by_frame(batched), by_frame(single)
    assert batched.keys() == single.keys()
    assert sum(len(r["detections"]) for r in single.values()) >= 10  # real detections to compare, not empty frames
    for key, want in single.items():
        got = batched[key]
        assert got["shape"] == want["shape"], key
        assert [d["cls"] for d in got["detections"]] == [d["cls"] for d in want["detections"]], key
        for d, w in zip(got["detections"], want["detections"]):
            assert np.allclose(d["xyxy"], w["xyxy"], atol=BOX_TOL_PX), (key, d, w)


def test_sources_file_adds_its_sources_after_any_source(run_cli, yolov5n_exports, sources, tmp_path):
    listing = tmp_path / "streams.txt"
    listing.write_text(f"# cameras of the yard\n\n  {sources[1]}  \n# {sources[0]}\n{sources[2]}\n")
    proc, records = detect(run_cli, yolov5n_exports["dynamic"], [sources[0]], "--sources", listing)
    assert proc.returncode == 0, proc.stderr
    lines = source_lines(proc.stderr)
    assert [lines[i][0] for i in range(3)] == [str(s) for s in sources]  # --source first, then the file's order
    assert len(records) == 2 * VIDEO_FRAMES + 2


@pytest.mark.parametrize("content, message", [
    (None, "cannot read it"),
    ("# only a comment\n\n", "names no source"),
])
def test_a_bad_sources_file_is_a_usage_error(run_cli, yolov5n_exports, tmp_path, content, message):
    listing = tmp_path / "streams.txt"
    if content is not None:
        listing.write_text(content)
    proc = run_cli(["detect", "--model", yolov5n_exports["dynamic"], "--sources", listing])
    assert proc.returncode == EXIT_USAGE, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("jitvision: error:")]
    assert len(errors) == 1 and message in errors[0] and str(listing) in errors[0], proc.stderr


def test_detect_without_any_source_is_a_usage_error(run_cli, yolov5n_exports):
    proc = run_cli(["detect", "--model", yolov5n_exports["dynamic"]])
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "--source" in proc.stderr


def test_a_missing_source_leaves_the_others_running(run_cli, yolov5n_exports, sources, tmp_path):
    missing = tmp_path / "gone.avi"
    proc, records = detect(run_cli, yolov5n_exports["dynamic"], [sources[0], missing, sources[1]])
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert len([r for r in records if r["source"] in (str(sources[0]), str(sources[1]))]) == 2 * VIDEO_FRAMES
    lines = source_lines(proc.stderr)
    assert lines[1][0] == str(missing) and lines[1][1:] == (0, 0, 0, 0, "failed to open"), proc.stderr
    assert lines[0][-1] == lines[2][-1] == "ended"


def test_the_reference_detector_reads_sources_files_the_same_way(capsys, yolov5n_exports, data_dir, tmp_path):
    from jitvision.__main__ import main

    bus, zidane = data_dir / "images" / "bus.jpg", data_dir / "images" / "zidane.jpg"
    listing = tmp_path / "streams.txt"
    listing.write_text(f"# photos\n\n  {zidane}\n")
    args = ["yolov5", "detect", "--model", str(yolov5n_exports["dynamic"]), "--img", "320", "--json"]
    assert main([*args, "--source", str(bus), "--sources", str(listing)]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["source"] for r in records] == [str(bus), str(zidane)]
    assert main([*args, "--sources", str(tmp_path / "missing.txt")]) == EXIT_USAGE
    assert "--sources" in capsys.readouterr().err
