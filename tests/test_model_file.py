"""jitvision.model_file: what a file is, its contract (the same kinds as the C++ read_contract), and the forward
shape both bench commands measure at."""
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from jitvision.errors import ModelError
from jitvision.model_file import ModelKind, input_shape, is_checkpoint, load_model, read_contract

MODELS = Path(__file__).resolve().parents[1] / "models"


class Tiny(torch.nn.Module):
    def forward(self, x):
        return x * 2


def save_tiny(path: Path, **extras: str) -> str:
    torch.jit.save(torch.jit.script(Tiny()), str(path), _extra_files=extras)
    return str(path)


def test_bundled_models_are_a_classifier_and_a_detector():
    digits = read_contract(load_model(str(MODELS / "mnist.torchscript")))
    assert (digits.kind, digits.task) == (ModelKind.CLASSIFIER, "digits") and digits.kind == "classifier"
    classifier = digits.as_classifier()
    assert classifier.input_shape == [1, 1, 28, 28] and classifier.labels == [str(i) for i in range(10)]
    with pytest.raises(ModelError, match="a digit classifier: use `jitvision digits`"):
        digits.as_detector()

    detector = read_contract(load_model(str(MODELS / "digits_yolov5n.torchscript")))
    assert detector.kind == ModelKind.DETECTOR and detector.classifier is None
    d = detector.as_detector()
    assert (d.origin, d.dynamic, d.letterbox, d.stride, len(d.names)) == ("jitvision", True, "rect", 32, 10)
    with pytest.raises(ModelError, match="not a digit classifier"):
        detector.as_classifier()


def test_official_config_makes_a_fixed_square_detector(tmp_path):
    config = {"shape": [1, 3, 384, 640], "stride": 32, "names": {"1": "bus", "0": "person"}}
    contract = read_contract(load_model(save_tiny(tmp_path / "official.torchscript",
                                                  **{"config.txt": json.dumps(config)})))
    d = contract.as_detector()
    assert (contract.kind, contract.task) == (ModelKind.DETECTOR, "detect")
    assert (d.origin, d.dynamic, d.letterbox, d.input_shape, d.img_size, d.names) == (
        "ultralytics", False, "square", (384, 640), 640, ["person", "bus"])
    assert input_shape(contract, img_size=320) == [1, 3, 384, 640]  # a fixed model takes only its own size


def test_files_without_a_known_task_are_unknown(tmp_path):
    bare = read_contract(load_model(save_tiny(tmp_path / "bare.torchscript")))
    assert (bare.kind, bare.task) == (ModelKind.UNKNOWN, "")
    with pytest.raises(ModelError, match="neither jitvision.json nor config.txt"):
        bare.as_detector()
    other = read_contract(load_model(save_tiny(tmp_path / "seg.torchscript", **{"jitvision.json": '{"task": "seg"}'})))
    assert (other.kind, other.task) == (ModelKind.UNKNOWN, "seg")
    with pytest.raises(ModelError, match="is a 'seg' model, not a YOLOv5 detector"):
        other.as_detector()
    with pytest.raises(ModelError, match="input contract"):
        input_shape(bare)


def test_incomplete_detector_metadata_is_a_model_error(tmp_path):
    path = save_tiny(tmp_path / "half.torchscript", **{"jitvision.json": '{"task": "detect", "stride": 32}'})
    with pytest.raises(ModelError, match="incomplete detector metadata"):
        read_contract(load_model(path))


def test_checkpoints_missing_files_and_other_files_are_told_apart(tmp_path):
    torch.save({"w": torch.zeros(1)}, tmp_path / "state.pt")
    assert is_checkpoint(str(tmp_path / "state.pt"))
    with pytest.raises(ModelError, match=r"torch.save\(\) checkpoint holding a state_dict"):
        load_model(str(tmp_path / "state.pt"))
    assert not is_checkpoint(save_tiny(tmp_path / "tiny.torchscript"))
    assert not is_checkpoint(str(tmp_path / "missing.pt"))
    with pytest.raises(ModelError, match="does not exist"):
        load_model(str(tmp_path / "missing.pt"))
    (tmp_path / "text.pt").write_text("not a zip")
    with pytest.raises(ModelError, match="not a zip archive"):
        load_model(str(tmp_path / "text.pt"))


def test_dynamic_detector_input_shapes_follow_the_stride_and_the_frame():
    contract = read_contract(load_model(str(MODELS / "digits_yolov5n.torchscript")))
    own = contract.as_detector().img_size
    assert input_shape(contract) == [1, 3, own, own]
    assert input_shape(contract, img_size=300) == [1, 3, 320, 320]  # rounded up to the stride, as the C++ bench
    assert input_shape(contract, img_size=640, frame_hw=(720, 1280)) == [1, 3, 384, 640]  # rect letterbox


OURS = {"task": "detect", "dynamic": True, "letterbox": "rect", "stride": 32, "img_size": 64, "names": ["a"]}


@pytest.mark.parametrize("changes, message", [
    ({"names": {"zero": "a"}}, "has class name key 'zero', not a class index"),
    ({"names": {"99999999999": "a"}}, "has class name key '99999999999', not a class index"),
    ({"names": {"1x": "a"}}, "has class name key '1x', not a class index"),
    ({"names": {"0": "a", "2": "b"}}, "has class name keys that are not 0..n-1"),
    ({"letterbox": "banana"}, "has letterbox 'banana', not rect or square"),
    ({"stride": 12}, "has stride 12, not a power of two from 1 to 256"),
    ({"stride": 0}, "has stride 0, not a power of two from 1 to 256"),
    ({"img_size": 0}, "has input size 0, not from 1 to 8192"),
    ({"img_size": 9000}, "has input size 9000, not from 1 to 8192"),
])
def test_bad_detector_values_are_model_errors(tmp_path, changes, message):
    # The same rules and messages as the C++ read_contract (native/core/tests/test_contract.cpp).
    path = save_tiny(tmp_path / "bad.torchscript", **{"jitvision.json": json.dumps({**OURS, **changes})})
    with pytest.raises(ModelError, match=re.escape(message)):
        read_contract(load_model(path))


def test_a_bad_official_input_size_is_a_model_error(tmp_path):
    config = {"shape": [1, 3, -64, 96], "stride": 32, "names": ["a"]}
    path = save_tiny(tmp_path / "bad.torchscript", **{"config.txt": json.dumps(config)})
    with pytest.raises(ModelError, match="has input size -64, not from 1 to 8192"):
        read_contract(load_model(path))


@pytest.mark.parametrize("changes, message", [({"letterbox": "banana"}, "has letterbox 'banana', not rect or square"),
                                              ({"names": {"x": "a"}}, "has class name key 'x', not a class index")])
def test_both_apps_refuse_bad_detector_metadata_with_exit_3_and_one_line(run_cli, tmp_path, changes, message):
    path = save_tiny(tmp_path / "bad.torchscript", **{"jitvision.json": json.dumps({**OURS, **changes})})
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((32, 32, 3), np.uint8))
    cpp = run_cli(["detect", "--model", path, "--source", image, "--device", "cpu"])
    python = subprocess.run([sys.executable, "-m", "jitvision", "yolov5", "detect", "--model", path, "--source",
                             str(image)], capture_output=True, text=True, timeout=300)
    for proc in (cpp, python):
        assert proc.returncode == 3, proc.stderr
        assert proc.stderr.strip() == f"jitvision: error: model file {path} {message}"
