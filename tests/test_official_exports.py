"""Official-style TorchScript exports (config.txt only): dynamic ones found by a probe forward, FP16 ones converted
on the CPU; and every foreign model format named, with what to do, in the same words by C++ and Python."""
import io
import json
import struct
import sys
import types
import zipfile

import pytest
import torch

from jitvision.model_file import foreign_format
from test_detect_parity import assert_same_frames, native, reference


def official_style(source, out, *, half: bool = False, fixed: bool = False):
    """Our export re-saved the way ultralytics ships TorchScript: config.txt ([1, 3, 640, 640]) only. ``fixed``: the
    input shape baked into the trace, as the official exporter bakes its grids (other sizes fail); ``half``: FP16
    weights, as `export.py --half` writes."""
    extra = {"config.txt": ""}
    module = torch.jit.load(str(source), _extra_files=extra)
    if fixed:
        class Fixed(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = module

            def forward(self, x):
                return self.inner(x.reshape(x.shape[0], 3, 640, 640))

        module = torch.jit.trace(Fixed(), torch.zeros(1, 3, 640, 640), check_trace=False)
    if half:
        module = module.half()
    torch.jit.save(module, str(out), _extra_files={"config.txt": extra["config.txt"]})
    return out


@pytest.fixture(scope="module")
def photos(data_dir):
    return [data_dir / "images" / "bus.jpg", data_dir / "images" / "zidane.jpg"]


@pytest.fixture(scope="module")
def exports(yolov5n_exports, tmp_path_factory):
    folder = tmp_path_factory.mktemp("official")
    dynamic = yolov5n_exports["dynamic"]
    return {"dynamic": official_style(dynamic, folder / "dynamic.torchscript"),
            "fixed": official_style(dynamic, folder / "fixed.torchscript", fixed=True),
            "half": official_style(dynamic, folder / "half.torchscript", half=True)}


def contract_of(run_cli, path):
    proc = run_cli(["info", "--json", path])
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["contract"]


def test_a_dynamic_export_is_probed_and_letterboxed_rect(exports, yolov5n_exports, photos, run_cli, repo_root):
    contract = contract_of(run_cli, exports["dynamic"])
    assert contract["origin"] == "ultralytics" and contract["dynamic"] and contract["letterbox"] == "rect"
    for extra in ([], ["--img", "320"]):
        cpp, _ = native(run_cli, exports["dynamic"], photos, *extra)
        ours, _ = native(run_cli, yolov5n_exports["dynamic"], photos, *extra)
        assert_same_frames(cpp, ours)  # same rect input as our dynamic export, --img honoured
        assert_same_frames(cpp, reference(repo_root, exports["dynamic"], photos, *extra))  # Python probes alike


def test_a_fixed_export_stays_square(exports, photos, run_cli, repo_root):
    contract = contract_of(run_cli, exports["fixed"])
    assert not contract["dynamic"] and contract["letterbox"] == "square" and contract["input"] == [1, 3, 640, 640]
    cpp, _ = native(run_cli, exports["fixed"], photos)
    assert_same_frames(cpp, reference(repo_root, exports["fixed"], photos))
    assert {d["name"] for d in cpp[0]["detections"]} >= {"person", "bus"}


def test_an_fp16_export_runs_converted_on_the_cpu_with_a_notice(exports, photos, run_cli, repo_root):
    proc = run_cli(["info", "--json", exports["half"]])
    assert json.loads(proc.stdout)["weights_dtype"] == "Half"
    cpp, stderr = native(run_cli, exports["half"], photos, "--device", "cpu")
    notes = [line for line in stderr.splitlines() if "FP16 weights" in line]
    assert notes == [f"jitvision: note: model file {exports['half']} holds FP16 weights; converted to FP32 for the CPU"]
    assert_same_frames(cpp, reference(repo_root, exports["half"], photos))  # Python converts it alike
    full, _ = native(run_cli, exports["dynamic"], photos)
    for got, want in zip(cpp, full):  # FP16-rounded weights: same objects, boxes within a pixel or two
        assert sorted(d["cls"] for d in got["detections"] if d["conf"] > 0.35) == \
            sorted(d["cls"] for d in want["detections"] if d["conf"] > 0.35)


@pytest.mark.parametrize("kind, shape", [("dynamic", [1, 3, 320, 320]), ("fixed", [1, 3, 640, 640])])
def test_bench_takes_img_for_a_dynamic_export_only(kind, shape, exports, run_cli):
    proc = run_cli(["bench", "--model", exports[kind], "--img", "320", "--warmup", "0", "--iters", "1", "--json"])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["shape"] == shape


def _yolov5_pickle(path):
    """A torch.save() of an object whose class is models.yolo.DetectionModel, as official checkpoints hold."""
    module = types.ModuleType("models.yolo")

    class DetectionModel:
        pass

    DetectionModel.__module__, DetectionModel.__qualname__ = "models.yolo", "DetectionModel"
    module.DetectionModel = DetectionModel
    before = {name: sys.modules.get(name) for name in ("models", "models.yolo")}
    sys.modules["models.yolo"] = module
    try:
        torch.save({"model": DetectionModel(), "epoch": -1}, path)
    finally:  # pickling imports the parent package too (the repository's models/ folder): leave neither behind
        for name, old in before.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def _zip(path, names):
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, b"pt2" if name.endswith("archive_format") else b"x")


class Tiny(torch.nn.Module):
    def forward(self, x):
        return x + 1


FORMATS = {  # name: (how to write it, words the message must hold)
    "onnx": (lambda p: p.write_bytes(b"\x08\x08\x12\x07pytorch\x1a\x032.1" + bytes(32)), "an ONNX model"),
    "pt2-uncompiled": (lambda p: torch.export.save(torch.export.export(Tiny(), (torch.zeros(2),)), str(p)),
                       "a torch.export program (.pt2) without an AOTInductor-compiled model"),
    "yolov5-checkpoint": (_yolov5_pickle, "a pickled YOLOv5 checkpoint (.pt/.pth, holding models.yolo."
                                          "DetectionModel), not TorchScript: convert it with `python -m jitvision "
                                          "yolov5 import"),
    "state-dict": (lambda p: torch.save(torch.nn.Linear(2, 2).state_dict(), p),
                   "a torch.save() checkpoint holding a state_dict (weights without the network)"),
    "pickled-module": (lambda p: torch.save(torch.nn.Linear(2, 2), p),
                       "a torch.save() checkpoint (a pickled Python object), not TorchScript"),
    "legacy-pickle": (lambda p: torch.save({"w": torch.zeros(1)}, p, _use_new_zipfile_serialization=False),
                      "a legacy (non-zip) torch.save() pickle"),
    "safetensors": (lambda p: p.write_bytes(struct.pack("<Q", 2) + b"{}"), "a safetensors weights file"),
    "tflite": (lambda p: p.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(16)), "a TensorFlow Lite model"),
    "gguf": (lambda p: p.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(16)), "a GGUF (llama.cpp) model"),
    "hdf5": (lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(16)), "an HDF5 (Keras) model"),
    "openvino-xml": (lambda p: p.write_bytes(b'<?xml version="1.0"?>\n<net name="x"/>\n'), "an OpenVINO IR model?"),
    "other-zip": (lambda p: _zip(p, ["notes/readme.txt"]), "neither TorchScript nor an AOTInductor package"),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_a_foreign_format_is_named_alike_in_both_languages(name, tmp_path, run_cli):
    write, words = FORMATS[name]
    path = tmp_path / "model.bin"  # the content decides, never the name
    write(path)
    proc = run_cli(["info", path])
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 3 and len(lines) == 1, proc.stderr
    assert words in lines[0]
    assert lines[0] == f"jitvision: error: model file {path} is {foreign_format(str(path))}"
    detect = run_cli(["detect", "--model", path, "--source", path])
    assert detect.returncode == 3 and detect.stderr.strip() == lines[0]


def test_known_formats_and_unknown_bytes_are_not_foreign(yolov5n_exports, tmp_path):
    assert foreign_format(str(yolov5n_exports["dynamic"])) is None
    random_bytes = tmp_path / "noise.bin"
    random_bytes.write_bytes(io.BytesIO(bytes(range(256)) * 4).getvalue())
    assert foreign_format(str(random_bytes)) is None  # the loader says "not a TorchScript archive" for those
