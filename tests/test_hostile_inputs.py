"""Hostile and broken inputs (issue #11): each test asserts what a user sees (the exit code, the one line, the results
that are still there, a time or memory bound), never just that the app ran.

Per-frame faults skip the frame, not the source (a warning, an error record in the JSON, "N skipped" in the summary,
exit 5); image files are bounded before they are decoded (--max-pixels, default 100 megapixels)."""
from __future__ import annotations

import json
import os
import struct
import subprocess
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

EXIT_INPUT = 5
PROCESS_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def model(repo_root) -> Path:
    return repo_root / "models" / "digits_yolov5n.torchscript"


def detect(model, *sources, extra=()):
    args = ["detect", "--model", model, "--img", "64", "--threads", "1", "--device", "cpu"]
    for s in sources:
        args += ["--source", s]
    return [*args, *extra]


def lines_with(stderr: str, prefix: str):
    return [line for line in stderr.splitlines() if line.startswith(prefix)]


def json_rows(text: str):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_bomb(path: Path, side: int) -> Path:
    """A valid 1-bit grey PNG of side x side pixels, all black: about 110 KB for 30000, 2.7 GB once decoded to BGR."""
    row = b"\0" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    rows_per_chunk = 1000
    data = b"".join(packer.compress(row * min(rows_per_chunk, side - start))
                    for start in range(0, side, rows_per_chunk)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) +
                     png_chunk(b"IEND", b""))
    return path


def run_with_peak_rss(args, timeout: float):
    """Runs the binary and waits for it with wait4, which gives this child's own peak RSS (MiB)."""
    start = time.monotonic()
    with open(os.devnull, "rb") as stdin:
        proc = subprocess.Popen([str(a) for a in args], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            pytest.fail(f"{args} still running after {timeout} s")
        time.sleep(0.05)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    return proc.returncode, out, err, usage.ru_maxrss / 1024, time.monotonic() - start


# --- item 6: a bad frame is skipped, not its source ------------------------------------------------------------------

def test_a_frame_too_thin_to_letterbox_is_skipped_and_the_rest_of_the_folder_is_read(run_cli, model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((96, 128, 3), 90, np.uint8))
    cv2.imwrite(str(folder / "b.png"), np.full((5000, 2, 3), 90, np.uint8))  # 2x5000: letterboxes to 0 pixels wide
    cv2.imwrite(str(folder / "c.png"), np.full((96, 128, 3), 200, np.uint8))
    out = tmp_path / "out.jsonl"
    result = run_cli(detect(model, folder, extra=["--json", out]), timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == EXIT_INPUT, result.stderr
    assert not lines_with(result.stderr, "jitvision: error: "), result.stderr
    warnings = lines_with(result.stderr, "jitvision: warning: skipped: ")
    assert len(warnings) == 1 and "b.png (2x5000) cannot be letterboxed" in warnings[0], result.stderr
    rows = json_rows(out.read_text())
    assert [Path(r["source"]).name for r in rows] == ["a.png", "b.png", "c.png"]
    assert rows[0]["shape"] == [96, 128] and rows[2]["shape"] == [96, 128]
    assert rows[1] == {"source": str(folder / "b.png"), "source_index": 0, "frame": 0,
                       "error": warnings[0].split("skipped: ", 1)[1]}
    assert any("2 frames from 1 source(s)" in line and "1 skipped" in line for line in result.stderr.splitlines())


# --- item 8: image files are bounded before they are decoded ---------------------------------------------------------

def test_a_png_bomb_is_skipped_undecoded_and_the_run_stays_small(jitvision_bin, model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.full((96, 128, 3), 90, np.uint8))
    bomb = write_png_bomb(folder / "b.png", 30000)
    assert bomb.stat().st_size < 1 << 20
    code, out, err, rss_mib, _ = run_with_peak_rss([jitvision_bin, *detect(model, folder, extra=["--json", "-"])],
                                                   PROCESS_TIMEOUT_S)
    assert code == EXIT_INPUT, err
    warnings = lines_with(err, "jitvision: warning: skipped: ")
    assert len(warnings) == 1 and "30000x30000" in warnings[0] and "--max-pixels limit of 100000000" in warnings[0]
    assert [Path(r["source"]).name for r in json_rows(out)] == ["a.png", "b.png"]
    assert rss_mib < 1500, f"peak RSS {rss_mib:.0f} MiB: the 2.7 GB bomb was decoded"


def test_one_bomb_in_a_digits_batch_keeps_the_other_results(jitvision_bin, tmp_path):
    digit = np.full((28, 28), 255, np.uint8)
    cv2.line(digit, (14, 4), (14, 24), 0, 3)
    cv2.imwrite(str(tmp_path / "a.png"), digit)
    write_png_bomb(tmp_path / "b.png", 30000)
    cv2.imwrite(str(tmp_path / "c.png"), digit)
    code, out, err, rss_mib, _ = run_with_peak_rss([jitvision_bin, "digits", "--json", tmp_path], PROCESS_TIMEOUT_S)
    assert code == EXIT_INPUT, err
    errors = lines_with(err, "jitvision: error: ")
    assert len(errors) == 1 and "b.png" in errors[0] and "--max-pixels" in errors[0], err
    assert [Path(r["source"]).name for r in json_rows(out)] == ["a.png", "c.png"]
    assert rss_mib < 1500, f"peak RSS {rss_mib:.0f} MiB"


def test_max_pixels_can_be_lowered(run_cli, model, tmp_path):
    image = tmp_path / "photo.jpg"
    cv2.imwrite(str(image), np.full((100, 200, 3), 90, np.uint8))
    result = run_cli(detect(model, image, extra=["--json", "-", "--max-pixels", "19999"]), timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == EXIT_INPUT, result.stderr
    assert "200x100 (20000 pixels), over the --max-pixels limit of 19999" in result.stderr
    result = run_cli(detect(model, image, extra=["--json", "-", "--max-pixels", "20000"]), timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert json_rows(result.stdout)[0]["shape"] == [100, 200]


# --- item 9: messages say what is really wrong ------------------------------------------------------------------------

def test_a_missing_file_with_a_bang_in_its_name_is_missing_not_a_pipeline(run_cli, model, tmp_path):
    missing = tmp_path / "missing!.jpg"
    result = run_cli(detect(model, missing), timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == EXIT_INPUT, result.stderr
    errors = lines_with(result.stderr, "jitvision: error: ")
    assert errors == [f"jitvision: error: image {missing} does not exist"], result.stderr


def test_a_symlink_loop_is_named_as_one(run_cli, tmp_path):
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    result = run_cli(["digits", loop], timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == EXIT_INPUT, result.stderr
    assert lines_with(result.stderr, "jitvision: error: ") == [f"jitvision: error: image {loop} is a symlink loop"]


# --- item 4: write errors are errors ----------------------------------------------------------------------------------

def noise_video(path: Path, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for i in range(frames):
        writer.write(np.random.default_rng(i).integers(0, 256, (240, 320, 3), dtype=np.uint8))
    writer.release()
    return path


def test_a_video_cut_off_by_a_full_disk_is_exit_6_and_the_json_is_kept(jitvision_bin, model, tmp_path):
    import resource

    clip = noise_video(tmp_path / "clip.avi", 40)
    out = tmp_path / "out.mp4"
    limit = 300 * 1024  # a file size limit (ulimit -f) stands in for a full disk: writes past it fail with EFBIG

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    proc = subprocess.run([str(jitvision_bin), *map(str, detect(model, clip, extra=["--json", "-", "--save-video",
                                                                                     out, "--quiet"]))],
                          capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S, preexec_fn=limit_file_size)
    assert proc.returncode == 6, proc.stderr  # not killed by SIGXFSZ, not exit 0 with a broken file
    errors = lines_with(proc.stderr, "jitvision: error: ")
    assert errors == [f"jitvision: error: video {out} is not playable (its container was not finished: disk full or "
                      "a file size limit?); 0 of 40 frames made it"], proc.stderr
    assert len(json_rows(proc.stdout)) == 40


def test_a_video_that_fits_is_checked_and_passes(run_cli, model, tmp_path):
    clip = noise_video(tmp_path / "clip.avi", 12)
    for name in ("out.mp4", "out.avi", "out.mkv"):
        result = run_cli(detect(model, clip, extra=["--save-video", tmp_path / name, "--quiet"]),
                         timeout=PROCESS_TIMEOUT_S)
        assert result.returncode == 0, result.stderr
        capture = cv2.VideoCapture(str(tmp_path / name))
        count = 0
        while capture.read()[0]:
            count += 1
        assert count == 12, name


@pytest.mark.parametrize("app", ["c++", "python"])
@pytest.mark.parametrize("args", [["--version"], ["info", "models/mnist.torchscript"],
                                  ["info", "--json", "models/mnist.torchscript"]])
def test_a_full_stdout_is_exit_6_with_one_line(jitvision_bin, repo_root, python_exe, args, app):
    command = [str(jitvision_bin)] if app == "c++" else [python_exe, "-m", "jitvision"]
    env = {**os.environ, "PYTHONPATH": str(repo_root / "python")}
    with open("/dev/full", "w") as full:
        proc = subprocess.run([*command, *args], stdout=full, stderr=subprocess.PIPE, text=True, cwd=repo_root,
                              timeout=PROCESS_TIMEOUT_S, env=env)
    assert proc.returncode == 6, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jitvision: error: cannot write to standard output"), lines


# --- item 9: codes and messages -----------------------------------------------------------------------------------

class FailsInForward(torch.nn.Module):
    """Pure (passes the firewall), but its forward fails on every input: view(-1, 5) of 784 or 3*H*W elements."""

    def forward(self, x):
        return x.view(-1, 5)


DETECTOR_META = {"task": "detect", "dynamic": True, "letterbox": "rect", "stride": 32, "img_size": 64, "names": ["a"]}


def bundled_digits_meta(repo_root) -> dict:
    extra = {"jitvision.json": ""}
    torch.jit.load(str(repo_root / "models" / "mnist.torchscript"), _extra_files=extra)
    return json.loads(extra["jitvision.json"])


def save_model(path: Path, meta: dict) -> Path:
    torch.jit.save(torch.jit.script(FailsInForward()), str(path), _extra_files={"jitvision.json": json.dumps(meta)})
    return path


@pytest.fixture
def digit_image(tmp_path) -> Path:
    digit = np.full((28, 28), 255, np.uint8)
    cv2.line(digit, (14, 4), (14, 24), 0, 3)
    cv2.imwrite(str(tmp_path / "digit.png"), digit)
    return tmp_path / "digit.png"


def test_a_model_that_fails_in_forward_is_exit_3_with_one_line(run_cli, repo_root, tmp_path, digit_image):
    digits_model = save_model(tmp_path / "digits.torchscript", bundled_digits_meta(repo_root))
    detector = save_model(tmp_path / "detector.torchscript", DETECTOR_META)
    for args, what in ((["digits", "--model", digits_model, digit_image], f"the digit model {digits_model} failed"),
                       (detect(detector, digit_image), f"the model failed on frame 0 of {digit_image}")):
        result = run_cli(args, timeout=PROCESS_TIMEOUT_S)
        assert result.returncode == 3, result.stderr
        errors = lines_with(result.stderr, "jitvision: error: ")
        assert len(errors) == 1 and errors[0].startswith(f"jitvision: error: {what}: RuntimeError: shape '[-1, 5]' "
                                                         "is invalid for input of size"), result.stderr
        assert "Traceback" not in result.stderr
    verbose = run_cli(["--verbose", "digits", "--model", digits_model, digit_image], timeout=PROCESS_TIMEOUT_S)
    assert verbose.returncode == 3 and "Traceback of TorchScript" in verbose.stderr, verbose.stderr


@pytest.mark.parametrize("std", [0.0, -1.0])
def test_a_digit_model_with_a_std_that_is_not_positive_is_a_model_error(run_cli, repo_root, tmp_path, digit_image,
                                                                        std):
    from jitvision.errors import ModelError
    from jitvision.model_file import load_model, read_contract

    meta = bundled_digits_meta(repo_root)
    meta["normalize"]["std"] = [std]
    model = save_model(tmp_path / "std.torchscript", meta)
    message = f"model file {model} has normalize std {std:g}, not a positive number"
    result = run_cli(["digits", "--model", model, digit_image], timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 3, result.stderr
    assert lines_with(result.stderr, "jitvision: error: ") == [f"jitvision: error: {message}"]
    with pytest.raises(ModelError, match=re_escape(message)):
        read_contract(load_model(str(model))).as_classifier()


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize("option", [["--conf", "0.5"], ["--save-video", "x.mp4"], ["--detector", "d.torchscript"],
                                    ["--max-frames", "3"]])
def test_live_options_given_to_digit_images_are_usage_errors(run_cli, digit_image, option):
    result = run_cli(["digits", digit_image, *option], timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 2, result.stderr
    assert lines_with(result.stderr, "jitvision: error: ") == [
        f"jitvision: error: {option[0]} applies to live mode (--source) only, not to digit images"]
    assert result.stdout == ""


def test_options_digit_images_use_are_accepted(run_cli, digit_image):
    result = run_cli(["digits", "--json", digit_image, "--threads", "1", "--max-pixels", "784"],
                     timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert json_rows(result.stdout)[0]["digit"] == 1


def test_pgm_and_pbm_inputs_are_saved_as_png(run_cli, model, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.pgm"), np.full((64, 80), 100, np.uint8))
    cv2.imwrite(str(folder / "b.pbm"), np.full((64, 80), 255, np.uint8))
    out = tmp_path / "out"
    result = run_cli(detect(model, folder, extra=["--save-dir", out, "--quiet"]), timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert cv2.imread(str(out / "a.png")).shape == (64, 80, 3)


# --- item 2: names that are not UTF-8 -------------------------------------------------------------------------------

def test_the_python_reference_detector_reads_a_non_utf8_name_like_the_app(run_cli, model, tmp_path, python_exe,
                                                                          repo_root):
    folder = tmp_path / "in"
    folder.mkdir()
    name = os.fsencode(folder) + b"/caf\xe9.png"
    ok, encoded = cv2.imencode(".png", np.full((96, 128, 3), 90, np.uint8))
    with open(name, "wb") as file:
        file.write(encoded.tobytes())
    env = {**os.environ, "PYTHONPATH": str(repo_root / "python")}
    python = subprocess.run([python_exe, "-m", "jitvision", "yolov5", "detect", "--model", str(model), "--img", "64",
                             "--source", str(folder), "--json"], capture_output=True, timeout=PROCESS_TIMEOUT_S,
                            env=env)
    assert python.returncode == 0, python.stderr.decode()  # it segfaulted inside cv2 (-11)
    cpp = run_cli(detect(model, folder, extra=["--json", "-", "--quiet"]), timeout=PROCESS_TIMEOUT_S)
    assert cpp.returncode == 0, cpp.stderr
    py_row, cpp_row = json_rows(python.stdout.decode())[0], json_rows(cpp.stdout)[0]
    assert py_row["source"] == cpp_row["source"] == f"{folder}/caf\\xe9.png"
    assert py_row["shape"] == cpp_row["shape"] == [96, 128]
    text = subprocess.run([python_exe, "-m", "jitvision", "yolov5", "detect", "--model", str(model), "--img", "64",
                           "--source", str(folder)], capture_output=True, timeout=PROCESS_TIMEOUT_S, env=env)
    assert text.returncode == 0 and b"caf\\xe9.png frame 0" in text.stdout, text.stderr.decode()


# --- item 3: nothing existing is overwritten without an explicit option ----------------------------------------------

def test_an_earlier_runs_json_is_kept_unless_overwrite_is_given(run_cli, model, tmp_path):
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.full((96, 128, 3), 90, np.uint8))
    out = tmp_path / "out.jsonl"
    out.write_text('{"earlier": "results"}\n')
    result = run_cli(detect(model, image, extra=["--json", out]), timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 2, result.stderr
    assert lines_with(result.stderr, "jitvision: error: ") == [
        f"jitvision: error: --json {out} exists (23 bytes); give --overwrite to replace it"]
    assert out.read_text() == '{"earlier": "results"}\n'
    result = run_cli(detect(model, image, extra=["--json", out, "--overwrite", "--quiet"]), timeout=PROCESS_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert json_rows(out.read_text())[0]["source"] == str(image)


def test_the_python_reference_detector_reports_a_failing_model_in_one_line(tmp_path, digit_image, python_exe,
                                                                          repo_root):
    detector = save_model(tmp_path / "detector.torchscript", DETECTOR_META)
    proc = subprocess.run([python_exe, "-m", "jitvision", "yolov5", "detect", "--model", str(detector), "--source",
                           str(digit_image)], capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S,
                          env={**os.environ, "PYTHONPATH": str(repo_root / "python")})
    assert proc.returncode == 3, proc.stderr
    errors = lines_with(proc.stderr, "jitvision: error: ")
    assert len(errors) == 1 and errors[0].startswith("jitvision: error: the model failed on an image of 28x28: "
                                                     "RuntimeError: shape '[-1, 5]' is invalid"), proc.stderr
    assert "Traceback" not in proc.stderr


# --- item 8: declared tensor sizes bounded by the storage in the file ------------------------------------------------

class ViewBomb(torch.nn.Module):
    """2 KB on disk, 8 GB of declared weights: a parameter that is a stride-0 view of two stored floats."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(2).as_strided((50000, 40000), (0, 0)))

    def forward(self, x):
        return x + 1


def test_a_stride_0_weight_bomb_is_refused_by_both_apps(run_cli, tmp_path, python_exe, repo_root, digit_image):
    path = tmp_path / "bomb.torchscript"
    torch.jit.save(torch.jit.script(ViewBomb()), str(path))
    assert path.stat().st_size < 10_000
    expected = (f"jitvision: error: model file {path}: parameter w declares 2000000000 elements (shape [50000, 40000], "
                "stride [0, 0]) over a storage of 2; refused before it is used")
    env = {**os.environ, "PYTHONPATH": str(repo_root / "python")}
    runs = [run_cli(["info", path], timeout=PROCESS_TIMEOUT_S),
            run_cli(["digits", "--model", path, "--trust-model", digit_image], timeout=PROCESS_TIMEOUT_S),
            subprocess.run([python_exe, "-m", "jitvision", "info", str(path)], capture_output=True, text=True,
                           timeout=PROCESS_TIMEOUT_S, env=env)]
    for proc in runs:
        assert proc.returncode == 3, proc.stderr
        assert lines_with(proc.stderr, "jitvision: error: ") == [expected]


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".ppm", ".pgm", ".pbm", ".tif"])
def test_the_python_header_reader_gives_the_size_opencv_wrote(ext):
    from jitvision.image_header import image_header_size

    image = np.full((23, 37) if ext in (".pgm", ".pbm") else (23, 37, 3), 120, np.uint8)
    ok, encoded = cv2.imencode(ext, image)
    assert ok and image_header_size(encoded.tobytes()) == (37, 23)
    assert image_header_size(encoded.tobytes()[:5]) is None


def test_the_python_reference_detector_does_not_decode_a_bomb(tmp_path, model, python_exe, repo_root):
    bomb = write_png_bomb(tmp_path / "bomb.png", 30000)
    proc = subprocess.run([python_exe, "-m", "jitvision", "yolov5", "detect", "--model", str(model), "--source",
                           str(bomb)], capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S,
                          env={**os.environ, "PYTHONPATH": str(repo_root / "python")})
    assert proc.returncode == EXIT_INPUT, proc.stderr
    assert lines_with(proc.stderr, "jitvision: error: ") == [
        f"jitvision: error: image {bomb} is 30000x30000 (900000000 pixels), over the --max-pixels limit of "
        "100000000; not decoded"]
