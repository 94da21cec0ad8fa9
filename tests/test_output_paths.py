"""Outputs never destroy inputs: `--json`, `--save-video` and `--save-dir` that would overwrite a source, the model or
another output are refused before anything is opened (exit 2, one line naming both paths, the input's bytes
unchanged); same names from different folders get distinct files; `bench --video` writes its annotated copy into a
private temporary directory, so nothing planted at a fixed temp path is followed."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import cv2
import pytest

from _support import empty_detections_model, moving_frames, textured_photo

EXIT_USAGE = 2


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def model() -> Path:
    return empty_detections_model()


@pytest.fixture()
def data(tmp_path) -> dict:
    """A folder with two images, a video and a copy of the model, all in tmp_path."""
    images = tmp_path / "images"
    images.mkdir()
    photo = textured_photo(240, 320)
    cv2.imwrite(str(images / "a.jpg"), photo)
    cv2.imwrite(str(images / "b.png"), photo[:, ::-1])
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 120))
    for frame in moving_frames(photo, 3, size=(160, 120)):
        writer.write(frame)
    writer.release()
    return {"images": images, "video": video, "image": images / "a.jpg"}


def detect(run_cli, model, sources, *extra):
    args = ["detect", "--model", model, "--img", "128", "--threads", "1", "--quiet"]
    for s in sources:
        args += ["--source", s]
    return run_cli([*args, *map(str, extra)], timeout=120)


def assert_refused(result, *named):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == EXIT_USAGE, result.stderr
    assert len(lines) == 1 and lines[0].startswith("jitvision: error: "), result.stderr
    for path in named:
        assert str(path) in lines[0], lines[0]


# (name, sources, output flags, the protected file, the paths the line names); built from `data` and the model.
CASES = {
    "save-video is the source video": lambda d, m: ([d["video"]], ["--save-video", d["video"]], d["video"]),
    "json is the source image": lambda d, m: ([d["image"]], ["--json", d["image"]], d["image"]),
    "json is an image of a source directory": lambda d, m: ([d["images"]], ["--json", d["image"]], d["image"]),
    "json is in a glob's matches": lambda d, m: ([d["images"] / "*.jpg"], ["--json", d["image"]], d["image"]),
    "json is the model": lambda d, m: ([d["video"]], ["--json", m], m),
    "save-video is a link to the source": lambda d, m: ([d["video"]], ["--save-video", d["link"]], d["video"]),
    "save-dir is the source directory": lambda d, m: ([d["images"]], ["--save-dir", d["images"]], d["image"]),
    "save-dir is inside the source directory": lambda d, m: ([d["images"]], ["--save-dir", d["images"] / "out"],
                                                             d["image"]),
    "save-dir is the source image's folder": lambda d, m: ([d["image"]], ["--save-dir", d["images"]], d["image"]),
    "json and save-video are one file": lambda d, m: ([d["video"]], ["--json", d["out"], "--save-video", d["out"]],
                                                      d["video"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_output_over_an_input_is_refused_and_the_input_is_unchanged(run_cli, model, data, tmp_path, case):
    model_copy = tmp_path / "model.torchscript"
    model_copy.write_bytes(Path(model).read_bytes())
    data["link"] = tmp_path / "link.mp4"
    data["link"].symlink_to(data["video"])
    data["out"] = tmp_path / "out.mp4"
    sources, flags, protected = CASES[case](data, model_copy)
    before = {p: sha256(p) for p in (protected, model_copy, data["video"], data["image"])}
    result = detect(run_cli, model_copy, sources, *flags)
    assert_refused(result, flags[1])
    assert {p: sha256(p) for p in before} == before
    assert not (data["images"] / "out").exists() and not data["out"].exists()


def test_live_digits_refuses_to_save_over_its_source(run_cli, data):
    before = sha256(data["video"])
    result = run_cli(["digits", "--source", data["video"], "--json", "--save-video", data["video"], "--threads", "1"],
                     timeout=120)
    assert_refused(result, data["video"])
    assert sha256(data["video"]) == before


def test_same_names_from_two_folders_are_both_saved(run_cli, model, tmp_path):
    photo = textured_photo(240, 320)
    for folder, image in (("one", photo), ("two", photo[::-1])):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / "a.jpg"), image)
    saved = tmp_path / "saved"
    result = detect(run_cli, model, [tmp_path / "one" / "a.jpg", tmp_path / "two"], "--save-dir", saved)
    assert result.returncode == 0, result.stderr
    # several sources: one sub-folder per source, named after it
    assert sorted(str(p.relative_to(saved)) for p in saved.rglob("*.jpg")) == ["a/a.jpg", "two/a.jpg"]
    first, second = (cv2.imread(str(saved / name)).astype(int) for name in ("a/a.jpg", "two/a.jpg"))
    assert abs(first - photo).mean() < abs(first - photo[::-1]).mean()
    assert abs(second - photo[::-1]).mean() < abs(second - photo).mean()


def test_bench_video_follows_no_link_at_the_old_fixed_temp_path(run_cli, model, data, tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    victim = tmp_path / "victim.mp4"
    (temp / "jitvision-bench.mp4").symlink_to(victim)
    env = {**os.environ, "TMPDIR": str(temp)}
    result = run_cli(["bench", "--model", model, "--video", data["video"], "--warmup", "0", "--iters", "1",
                      "--threads", "1", "--json"], env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not victim.exists()
    assert [p.name for p in temp.iterdir()] == ["jitvision-bench.mp4"]  # the private directory is gone again
