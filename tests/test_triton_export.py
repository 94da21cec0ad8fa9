"""`python -m jitvision triton export`: the Triton model repository entry (config.pbtxt fields, including those the
LibTorch backend requires, the model files) and the models it refuses before writing anything."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from jitvision.__main__ import main

REPO_ROOT = Path(__file__).resolve().parents[1]
DIGIT_DETECTOR = REPO_ROOT / "models" / "digits_yolov5n.torchscript"
MNIST = REPO_ROOT / "models" / "mnist.torchscript"
PYTHON_MODEL = REPO_ROOT / "python" / "jitvision" / "triton" / "python_model.py"

DIGITS_METADATA = {"task": "digits", "input": {"shape": [1, 1, 28, 28]}, "labels": [str(i) for i in range(10)],
                   "normalize": {"scale": 255.0, "mean": [0.1307], "std": [0.3081]}}


def export(capsys, *args) -> tuple:
    """(exit code, stdout, stderr) of `python -m jitvision triton export ARGS`, run in this process."""
    code = main(["triton", "export", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def tensor(config: str, kind: str) -> dict:
    """name, data_type and dims of the one input or output block of a config.pbtxt."""
    block = re.search(kind + r" \[\s*\{(.*?)\}\s*\]", config, re.S).group(1)
    return {"name": re.search(r'name: "([^"]+)"', block).group(1),
            "data_type": re.search(r"data_type: (\w+)", block).group(1),
            "dims": [int(d) for d in re.search(r"dims: \[([^\]]*)\]", block).group(1).split(",")]}


def parameters(config: str) -> dict:
    pairs = re.findall(r'parameters \{\s*key: "([^"]+)"\s*value: \{ string_value: "((?:[^"\\]|\\.)*)" \}', config)
    return {k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in pairs}


def field(config: str, name: str) -> str:
    return re.search(rf"^\s*{name}: (.+)$", config, re.M).group(1)


def save_traced(path: Path, module: torch.nn.Module, example: torch.Tensor, metadata=None) -> Path:
    extra = {"jitvision.json": json.dumps(metadata)} if metadata is not None else {}
    torch.jit.save(torch.jit.trace(module.eval(), example), str(path), _extra_files=extra)
    return path


class BatchOfOne(torch.nn.Module):
    """A classifier traced with its batch baked in (reshape to 1 row): it cannot take a batch of 2."""

    def forward(self, x):
        return x.reshape(1, 784)[:, :10] * 2.0


class TwoOutputs(torch.nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10], x.flatten(1)[:, 10:20]


def test_python_backend_detector_entry(tmp_path, capsys):
    code, out, err = export(capsys, "--model", DIGIT_DETECTOR, "--out", tmp_path, "--name", "digits",
                            "--max-batch", 4, "--instances", 2, "--queue-delay-us", 500)
    assert code == 0, err
    entry = tmp_path / "digits"
    assert f"wrote {entry}" in out
    config = (entry / "config.pbtxt").read_text()
    assert field(config, "name") == '"digits"' and field(config, "backend") == '"python"'
    assert "platform" not in config
    assert field(config, "max_batch_size") == "4"
    assert tensor(config, "input") == {"name": "INPUT__0", "data_type": "TYPE_FP32", "dims": [3, -1, -1]}
    assert tensor(config, "output") == {"name": "OUTPUT__0", "data_type": "TYPE_FP32", "dims": [-1, 15]}
    assert field(config, "max_queue_delay_microseconds") == "500"
    assert field(config, "count") == "2" and field(config, "kind") == "KIND_CPU"
    params = parameters(config)
    assert json.loads(params["jitvision.names"]) == [str(i) for i in range(10)]
    assert (params["jitvision.task"], params["jitvision.stride"], params["jitvision.letterbox"]) == \
        ("detect", "32", "rect")
    assert json.loads(params["jitvision.dynamic"]) is True
    assert (entry / "1" / "model.pt").read_bytes() == DIGIT_DETECTOR.read_bytes()
    assert (entry / "1" / "model.py").read_text() == PYTHON_MODEL.read_text()
    assert sorted(p.name for p in entry.iterdir()) == ["1", "config.pbtxt"]  # no staging folder left behind


def test_libtorch_gpu_classifier_has_what_the_libtorch_backend_requires(tmp_path, capsys):
    code, _, err = export(capsys, "--model", MNIST, "--out", tmp_path, "--backend", "libtorch", "--device", "gpu",
                          "--instances", 3)
    assert code == 0, err
    entry = tmp_path / "mnist"  # default name: the file's stem
    config = (entry / "config.pbtxt").read_text()
    # LibTorch backend: this platform, a model file in the version folder, tensors named <NAME>__<index>.
    assert field(config, "platform") == '"pytorch_libtorch"' and "backend:" not in config
    assert field(config, "default_model_filename") == '"model.pt"'
    assert (entry / "1" / "model.pt").read_bytes() == MNIST.read_bytes()
    assert not (entry / "1" / "model.py").exists()
    assert tensor(config, "input") == {"name": "INPUT__0", "data_type": "TYPE_FP32", "dims": [1, 28, 28]}
    assert tensor(config, "output") == {"name": "OUTPUT__0", "data_type": "TYPE_FP32", "dims": [10]}
    assert field(config, "max_batch_size") == "8"
    assert field(config, "count") == "3" and field(config, "kind") == "KIND_GPU"
    params = parameters(config)
    assert params["jitvision.task"] == "digits" and json.loads(params["jitvision.mean"]) == [0.1307]


def test_fixed_size_detector_has_fixed_dims(tmp_path, capsys, yolov5n_exports):
    code, _, err = export(capsys, "--model", yolov5n_exports["fixed"], "--out", tmp_path, "--name", "fixed",
                          "--backend", "libtorch")
    assert code == 0, err
    config = (tmp_path / "fixed" / "config.pbtxt").read_text()
    assert tensor(config, "input")["dims"] == [3, 640, 640]
    assert tensor(config, "output")["dims"] == [3 * (80 * 80 + 40 * 40 + 20 * 20), 85]
    assert json.loads(parameters(config)["jitvision.dynamic"]) is False


def test_refuses_a_model_without_a_contract(tmp_path, capsys):
    model = save_traced(tmp_path / "bare.torchscript", BatchOfOne(), torch.zeros(1, 1, 28, 28))
    code, _, err = export(capsys, "--model", model, "--out", tmp_path / "repo")
    assert code == 3
    assert err.count("\n") == 1 and "carries neither jitvision.json nor config.txt" in err
    assert not (tmp_path / "repo").exists()


def test_refuses_a_batch_it_cannot_take_and_accepts_max_batch_1(tmp_path, capsys):
    model = save_traced(tmp_path / "one.torchscript", BatchOfOne(), torch.zeros(1, 1, 28, 28), DIGITS_METADATA)
    code, _, err = export(capsys, "--model", model, "--out", tmp_path / "repo")
    assert code == 3
    assert err.count("\n") == 1 and "fails a forward at batch 2" in err and "--max-batch 1" in err
    assert not (tmp_path / "repo" / "one").exists()
    code, _, err = export(capsys, "--model", model, "--out", tmp_path / "repo", "--max-batch", 1)
    assert code == 0, err
    assert field((tmp_path / "repo" / "one" / "config.pbtxt").read_text(), "max_batch_size") == "1"


def test_refuses_two_outputs(tmp_path, capsys):
    model = save_traced(tmp_path / "two.torchscript", TwoOutputs(), torch.zeros(1, 1, 28, 28), DIGITS_METADATA)
    code, _, err = export(capsys, "--model", model, "--out", tmp_path / "repo")
    assert code == 3
    assert err.count("\n") == 1 and "returns tuple, not one tensor" in err


def test_never_overwrites_without_overwrite(tmp_path, capsys):
    assert export(capsys, "--model", MNIST, "--out", tmp_path, "--max-batch", 2)[0] == 0
    config = tmp_path / "mnist" / "config.pbtxt"
    before = config.read_text()
    code, _, err = export(capsys, "--model", MNIST, "--out", tmp_path, "--max-batch", 5)
    assert code == 6 and "exists: pass --overwrite" in err and err.count("\n") == 1
    assert config.read_text() == before
    code, _, err = export(capsys, "--model", MNIST, "--out", tmp_path, "--max-batch", 5, "--overwrite")
    assert code == 0, err
    assert field(config.read_text(), "max_batch_size") == "5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist"]


@pytest.mark.parametrize("args, message", [
    (["--name", "bad/name"], "is not a Triton model name"),
    (["--max-batch", "0"], "--max-batch 0: from 1 to 1024"),
    (["--instances", "0"], "--instances 0: from 1 to 1024"),
    (["--backend", "onnx"], "invalid choice"),
])
def test_usage_errors(tmp_path, capsys, args, message):
    code, _, err = export(capsys, "--model", MNIST, "--out", tmp_path / "repo", *args)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "repo").exists()


class WritesAFile(torch.nn.Module):
    """Would write `marker` through torch.from_file when run: the model firewall must refuse it unrun."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker

    def forward(self, x):
        t = torch.from_file(self.marker, shared=True, size=16, dtype=torch.uint8)
        return x.flatten(1)[:, :10] + t.fill_(7).sum()


def test_the_model_firewall_refuses_before_anything_runs(tmp_path, capsys):
    marker = tmp_path / "marker"
    model = tmp_path / "hostile.torchscript"
    torch.jit.save(torch.jit.script(WritesAFile(str(marker))), str(model),
                   _extra_files={"jitvision.json": json.dumps(DIGITS_METADATA)})
    code, _, err = export(capsys, "--model", model, "--out", tmp_path / "repo")
    assert code == 3 and "torch.from_file" in err and err.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "repo").exists()
