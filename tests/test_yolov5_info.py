"""`info` and the detector on files without the real data: traced, scripted, official-style, broken."""
import json

import cv2
import numpy as np
import pytest
import torch

from jitvision.__main__ import main
from jitvision.info import model_info
from jitvision.yolov5.detect import load_detector
from jitvision.yolov5.export import export_torchscript
from jitvision.yolov5.model import Yolov5, yolov5_architecture


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.linear(x).relu()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def small_export(tmp_path_factory):
    """A random 2-class yolov5n exported at 64 (fast), and a copy carrying only the official config.txt."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("small")
    model = Yolov5(yolov5_architecture("n", nc=2), names=["ball", "goal"]).eval()
    ours = folder / "ours.torchscript"
    export_torchscript(model, str(ours), img_size=64)
    extras = {"config.txt": ""}
    module = torch.jit.load(str(ours), _extra_files=extras)
    official = folder / "official-style.torchscript"
    torch.jit.save(module, str(official), _extra_files=extras)
    return ours, official


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_traced_and_scripted_are_told_apart(tmp_path):
    traced, scripted = tmp_path / "traced.pt", tmp_path / "scripted.pt"
    torch.jit.save(torch.jit.trace(Tiny(), torch.rand(1, 4)), str(traced))
    torch.jit.save(torch.jit.script(Tiny()), str(scripted))
    assert model_info(str(traced))["build"] == "traced"
    info = model_info(str(scripted))
    assert info["build"] == "scripted"
    assert info["parameters"] == 10 and info["input"] is None and info["extra_files"] == {}
    assert info["forward"].endswith("Tensor x) -> Tensor")


def test_info_reads_official_config_only_files(small_export):
    _, official = small_export
    info = model_info(str(official))
    assert info["metadata"] is None and info["config"]["names"] == {"0": "ball", "1": "goal"}
    assert info["input"] == {"shape": [1, 3, 64, 64], "dtype": "float32", "dynamic": False}
    assert info["outputs"] == [{"shape": [1, 3 * (64 + 16 + 4), 7], "dtype": "float32"}]
    assert info["build"] == "traced" and info["saved_with_torch"] is None


def test_official_style_files_are_probed_for_dynamic_shapes(small_export):
    ours, official = small_export
    detector = load_detector(str(official))  # config.txt says 64x64; our trace runs at any size: probed dynamic
    assert (detector.origin, detector.rect, detector.fixed_shape, detector.names) == (
        "ultralytics", True, None, ["ball", "goal"])
    detector = load_detector(str(ours))
    assert (detector.origin, detector.rect, detector.input_shape(None), detector.input_shape(128)) == (
        "jitvision", True, (64, 64), (128, 128))


def test_detect_json_lines_on_a_directory(capsys, small_export, tmp_path):
    ours, _ = small_export
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        cv2.imwrite(str(tmp_path / name), rng.integers(0, 255, (50, 90, 3), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    code, out, err = run_cli(capsys, "yolov5", "detect", "--model", ours, "--source", tmp_path, "--json",
                             "--conf", "0.01", "--max-det", "5")
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["source"].rsplit("/", 1)[-1], r["frame"], r["shape"]) for r in records] == [
        ("a.png", 0, [50, 90]), ("b.jpg", 0, [50, 90])]
    for record in records:
        assert 0 < len(record["detections"]) <= 5
        for d in record["detections"]:
            assert d["name"] == ["ball", "goal"][d["cls"]] and d["conf"] > 0.01
            x1, y1, x2, y2 = d["xyxy"]
            assert 0 <= x1 <= x2 <= 90 and 0 <= y1 <= y2 <= 50


@pytest.mark.parametrize("argv, exit_code, message", [
    (["yolov5", "detect", "--model", "{tmp}/missing.torchscript", "--source", "{tmp}"], 3, "does not exist"),
    (["yolov5", "detect", "--model", "{ours}", "--source", "{tmp}/nothing*.jpg"], 5, "no files match"),
    (["yolov5", "detect", "--model", "{ours}", "--source", "{tmp}/x.jpg", "--img", "100"], 3, "not a multiple"),
    (["yolov5", "detect", "--model", "{tmp}/x.jpg", "--source", "{tmp}/x.jpg"], 3, "not a TorchScript file"),
    (["info", "{tmp}/state.pt"], 3, "torch.save() checkpoint holding a state_dict"),
    (["info", "{ours}", "--bogus"], 2, "unrecognized arguments: --bogus"),
])
def test_errors_are_one_line_with_the_apps_exit_code(capsys, small_export, tmp_path, argv, exit_code, message):
    cv2.imwrite(str(tmp_path / "x.jpg"), np.zeros((8, 8, 3), np.uint8))
    torch.save({"w": torch.zeros(1)}, tmp_path / "state.pt")
    argv = [a.format(tmp=tmp_path, ours=small_export[0]) for a in argv]
    code, _, err = run_cli(capsys, *argv)
    assert code == exit_code and err.startswith("jitvision: error: ") and message in err and err.count("\n") == 1
