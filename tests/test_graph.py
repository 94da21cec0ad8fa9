"""`python -m jitvision graph`: SVG, PNG and DOT of our exports, official-style files and the MNIST model."""
import json
import re
import xml.etree.ElementTree as ET

import pytest
import torch

from conftest import REPO_ROOT
from jitvision.__main__ import main
from jitvision.yolov5.export import export_torchscript
from jitvision.yolov5.model import Yolov5, yolov5_architecture

MNIST = REPO_ROOT / "models" / "mnist.torchscript"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """Our export by trace and by script (a random 2-class yolov5n at 64), an official-style copy (config.txt only),
    and the bundled MNIST model."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("graph")
    model = Yolov5(yolov5_architecture("n", nc=2), names=["ball", "goal"]).eval()
    made = {"mnist": MNIST}
    for method in ("trace", "script"):
        made[method] = folder / f"{method}.torchscript"
        export_torchscript(model, str(made[method]), img_size=64, method=method)
    extras = {"config.txt": ""}
    module = torch.jit.load(str(made["trace"]), _extra_files=extras)
    made["official"] = folder / "official.torchscript"
    torch.jit.save(module, str(made["official"]), _extra_files=extras)
    return made


def graph(capsys, *argv):
    code = main(["graph", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


LABEL = r'label=(?:"([^"]*)"|([^\s\]]*))'


def edges(dot: str) -> list:
    """(tail, head, label) of every edge of a DOT text."""
    found = re.findall(r"^\s*(n\d+) -> (n\d+)(?: \[" + LABEL + ")?", dot, re.M)
    return [(tail, head, quoted or bare) for tail, head, quoted, bare in found]


def boxes(dot: str) -> dict:
    """{node id: label} of a DOT text."""
    return {node: quoted or bare for node, quoted, bare in re.findall(r"^\s*(n\d+) \[" + LABEL, dot, re.M)}


@pytest.mark.parametrize("kind", ["trace", "script", "official"])
def test_yolov5_modules_at_depth_2_with_shapes(capsys, models, kind):
    code, dot, _ = graph(capsys, models[kind])  # DOT on stdout by default
    assert code == 0 and dot.startswith("digraph model {")
    labels = boxes(dot)
    layers = sorted(v for v in labels.values() if v.startswith("model."))
    assert len(layers) == 25 and "model.24: Detect" in layers and "model.9: SPPF" in layers
    by_label = {label: node for node, label in labels.items()}
    found = {(labels[t], labels[h], shape) for t, h, shape in edges(dot)}
    assert ("input", "model.0: Conv", "1x3x64x64") in found
    assert ("model.0: Conv", "model.1: Conv", "1x16x32x32") in found
    assert ("model.24: Detect", "output", f"1x{3 * (64 + 16 + 4)}x7") in found
    assert {h for t, h, _ in edges(dot) if t == by_label["model.6: C3"]} == {by_label["model.7: Conv"],
                                                                           by_label["model.12: Concat"]}


def test_deeper_levels_open_into_clusters(capsys, models, tmp_path):
    out = tmp_path / "deep.dot"
    code, _, err = graph(capsys, models["script"], "--depth", "3", "--out", out)
    dot = out.read_text()
    assert code == 0 and f"wrote {out}" in err
    assert 'label="model.2: C3"' in dot and "subgraph cluster_" in dot
    assert "model.2.cv1: Conv" in dot and "model.2.m: Sequential" in dot and "model.24.m.0: Conv2d" in dot


def test_inlined_view_has_operators_not_modules(capsys, models):
    code, dot, _ = graph(capsys, models["trace"], "--inlined")
    labels = set(boxes(dot).values())
    assert code == 0 and {"_convolution", "silu", "cat", "sigmoid", "upsample_nearest2d"} <= labels
    assert not any(label.startswith("model.") for label in labels)
    assert "size" not in labels and "Int" not in labels  # shape arithmetic is left out


def test_mnist_svg_and_png(capsys, models, tmp_path):
    svg, png = tmp_path / "mnist.svg", tmp_path / "mnist.png"
    assert graph(capsys, models["mnist"], "--out", svg)[0] == 0
    assert graph(capsys, models["mnist"], "--inlined", "--out", png)[0] == 0
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "input" in texts and "output" in texts and "1x1x28x28" in texts and "1x10" in texts
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_forward_at_an_unbounded_recorded_shape(capsys, tmp_path):
    extras = {"jitvision.json": ""}
    module = torch.jit.load(str(MNIST), _extra_files=extras)
    meta = json.loads(extras["jitvision.json"])
    meta["input"]["shape"] = [1, 1, 100000, 100000]
    huge = tmp_path / "huge.torchscript"
    torch.jit.save(module, str(huge), _extra_files={"jitvision.json": json.dumps(meta)})
    code, dot, _ = graph(capsys, huge)
    assert code == 0 and "no shapes: the recorded input shape [1, 1, 100000, 100000] is outside" in dot
    assert all(label == "" for _, _, label in edges(dot))


def test_not_torchscript_is_a_model_error(capsys, tmp_path):
    state_dict = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, state_dict)
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    for path in (state_dict, text, tmp_path / "missing.torchscript"):
        code, out, err = graph(capsys, path, "--out", tmp_path / "x.svg")
        assert code == 3 and out == "" and len(err.splitlines()) == 1 and err.startswith("jitvision: error: ")
    assert not (tmp_path / "x.svg").exists()


def test_bad_output_extension_is_a_usage_error(capsys, tmp_path):
    code, _, err = graph(capsys, MNIST, "--out", tmp_path / "graph.jpg")
    assert code == 2 and "must be one of .svg, .png, .dot" in err
