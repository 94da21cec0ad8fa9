"""`yolov5 import --method trace|script|mixed`: three ways into TorchScript, one set of numbers.

Random weights (no data) for the numerics; the official yolov5n (real data) for the C++ app's detections.
"""
import json
import os
import subprocess
import sys

import pytest
import torch

from jitvision.info import build_kind
from jitvision.yolov5.errors import ExportError
from jitvision.yolov5.export import EXPORT_METHODS, export_torchscript
from jitvision.yolov5.model import fuse_conv_bn
from test_yolov5_export import random_model

BUILDS = {"trace": "traced", "script": "scripted", "mixed": "traced, with scripted parts"}
SIZES = [(128, 128), (96, 160), (64, 96)]  # (h, w), all but the first differ from the traced example input

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model():
    return random_model(nc=3, names=["a", "b", "c"], seed=2)


@pytest.fixture(scope="module")
def exports(model, tmp_path_factory):
    """{method: (ExportResult, module, extra files)} for a random 3-class yolov5n exported at 128 by each method."""
    folder = tmp_path_factory.mktemp("methods")
    made = {}
    for method in EXPORT_METHODS:
        result = export_torchscript(model, str(folder / f"{method}.torchscript"), img_size=128, method=method)
        extras = {"jitvision.json": "", "config.txt": ""}
        made[method] = result, torch.jit.load(result.path, _extra_files=extras).eval(), extras
    return made


def test_every_method_equals_eager_bit_for_bit(exports, model):
    eager = fuse_conv_bn(model.float().eval())  # exports are fused, so compare with the fused model
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for h, w in SIZES:
            x = torch.rand(2, 3, h, w, generator=generator)
            want = eager(x)[0]
            assert want.shape == (2, 3 * sum((h // s) * (w // s) for s in (8, 16, 32)), 8)
            for method, (_, module, _) in exports.items():
                got = module(x)[0]
                assert torch.equal(got, want), f"{method} at {h}x{w}: max diff {(got - want).abs().max().item()}"
    assert all(result.max_abs_diff == 0.0 for result, _, _ in exports.values())


def test_metadata_differs_only_in_the_method(exports):
    metas = {m: json.loads(extras["jitvision.json"]) for m, (_, _, extras) in exports.items()}
    configs = {extras["config.txt"] for _, _, extras in exports.values()}
    assert {m: meta.pop("export") for m, meta in metas.items()} == {m: m for m in EXPORT_METHODS}
    assert metas["trace"] == metas["script"] == metas["mixed"] and len(configs) == 1
    assert metas["trace"]["verification"]["batches"] == [2, 1]


def test_each_method_builds_what_it_says(exports):
    assert {m: build_kind(module) for m, (_, module, _) in exports.items()} == BUILDS
    layers = exports["mixed"][1].model
    assert build_kind(getattr(layers, "24")) == "scripted" and build_kind(getattr(layers, "23")) == "traced"


@pytest.mark.parametrize("method", EXPORT_METHODS)
def test_no_dtype_is_baked_into_the_graph(exports, method):
    module = exports[method][1]
    with torch.no_grad():
        half = [module.half()(torch.rand(1, 3, 64, 32).half())[0], module.float()(torch.rand(1, 3, 64, 32))[0]]
    assert [t.dtype for t in half] == [torch.float16, torch.float32]


def test_unknown_method_is_refused(model, tmp_path):
    with pytest.raises(ExportError, match="unknown export method 'compile'"):
        export_torchscript(model, str(tmp_path / "x.torchscript"), img_size=64, method="compile")
    proc = subprocess.run([sys.executable, "-m", "jitvision", "yolov5", "import", "w.pt", "--out",
                           str(tmp_path / "x.torchscript"), "--method", "compile"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "invalid choice: 'compile'" in proc.stderr
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def yolov5n_by_method(data_dir, yolov5n_exports) -> dict:
    """The official yolov5n exported by each method, cached like conftest's ``yolov5n_exports`` (trace is its
    dynamic export: trace is the default method)."""
    weights = data_dir / "weights" / "yolov5n.pt"
    cache = yolov5n_exports["dynamic"].parent  # keyed by the weights and the exporter's source
    made = {"trace": yolov5n_exports["dynamic"]}
    for method in ("script", "mixed"):
        path = cache / f"yolov5n-dynamic-{method}.torchscript"
        if not path.is_file():
            tmp = path.with_suffix(".partial")
            proc = subprocess.run([sys.executable, "-m", "jitvision", "yolov5", "import", str(weights),
                                   "--out", str(tmp), "--method", method], capture_output=True, text=True,
                                  timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
            assert proc.returncode == 0, proc.stderr
            assert f"by {method}" in proc.stdout and "max abs diff 0 " in proc.stdout, proc.stdout
            tmp.rename(path)
        made[method] = path
    return made


def test_cpp_detections_are_identical_for_every_method(yolov5n_by_method, data_dir, run_cli):
    outputs = {}
    for method, path in yolov5n_by_method.items():
        proc = run_cli(["detect", "--model", path, "--source", data_dir / "images", "--json", "-"])
        assert proc.returncode == 0, proc.stderr
        rows = [json.loads(line) for line in proc.stdout.splitlines()]
        outputs[method] = [{k: v for k, v in row.items() if k != "timestamp"} for row in rows]  # differs per run
    assert outputs["trace"] == outputs["script"] == outputs["mixed"]
    names = {d["name"] for record in outputs["trace"] for d in record["detections"]}
    assert len(outputs["trace"]) == 3 and {"bus", "person", "tie"} <= names
