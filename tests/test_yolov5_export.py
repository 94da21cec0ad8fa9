"""Model, export and verification without the real data: randomly initialised YOLOv5 models."""
import copy
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from jitvision.errors import ModelError, OutputError
from jitvision.model_file import load_model
from jitvision.precision import convert_except_head, cpu_has_bf16
from jitvision.yolov5 import export as export_module
from jitvision.yolov5.checkpoint import import_checkpoint
from jitvision.yolov5.errors import CheckpointError, ExportError
from jitvision.yolov5.export import export_torchscript
from jitvision.yolov5.model import Yolov5, fuse_conv_bn, yolov5_architecture
from jitvision.yolov5.reimport import import_export

METADATA_KEYS = {"format", "task", "arch", "dynamic", "letterbox", "img_size", "stride", "strides", "anchors", "nc",
                 "names", "fused", "half", "export", "mixed_precision", "source", "torch_version", "verification"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def random_model(nc: int = 80, names=None, seed: int = 0) -> Yolov5:
    """yolov5n with random weights and random BatchNorm statistics (so fusing has something to fold)."""
    torch.manual_seed(seed)
    model = Yolov5(yolov5_architecture("n", nc), names=names)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def model():
    return random_model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "random-n.torchscript"
    result = export_torchscript(model, str(path), img_size=320)
    loaded = load_model(str(path))
    module, extras = loaded.module, loaded.extras
    return result, module, extras


def test_fused_parameter_counts_match_the_published_models():
    published = {"n": 1867405, "s": 7225885, "m": 21172173}  # l: 46533693, x: 86705005 (slow to build)
    for scale, count in published.items():
        model = fuse_conv_bn(Yolov5(yolov5_architecture(scale)).eval())
        assert sum(p.numel() for p in model.parameters()) == count, scale


def test_official_parameter_names(model):
    names = model.state_dict().keys()
    for key in ("model.0.conv.weight", "model.2.m.0.cv1.conv.weight", "model.9.cv2.bn.running_var",
                "model.24.m.2.bias", "model.24.anchors"):
        assert key in names
    assert model.strides == [8, 16, 32]
    assert torch.allclose(model.detect.anchors[2] * 32, torch.tensor([[116.0, 90], [156, 198], [373, 326]]))


def test_export_is_verified_and_carries_both_metadata_files(exported, model):
    result, _, extras = exported
    assert result.max_abs_diff <= 1e-4
    assert result.sizes == [(320, 320), (192, 320), (160, 128)]
    meta = json.loads(extras["jitvision.json"])
    assert set(meta) == METADATA_KEYS
    assert meta["format"] == "jitvision/1" and meta["dynamic"] is True and meta["letterbox"] == "rect"
    assert meta["anchors"] == [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]]
    bf16 = meta["verification"].pop("bf16")
    assert meta["verification"] == {"sizes": [[320, 320], [192, 320], [160, 128]], "batches": [2, 1],
                                    "max_abs_diff": result.max_abs_diff}
    if cpu_has_bf16():  # the --dtype bf16 form checked at export: the same rows as bf16 eager, a rounding from fp32
        assert set(bf16) == {"vs_same_precision", "box_px", "confidence"}
        assert bf16["vs_same_precision"] < 1.0 and 0 < bf16["box_px"] < 16 and bf16["confidence"] < 0.1
    else:
        assert bf16 is None
    assert meta["export"] == "trace"
    assert meta["names"] == model.names and meta["nc"] == 80 and meta["half"] is False
    assert meta["mixed_precision"] == {"fp32_head": "model.24"}
    config = json.loads(extras["config.txt"])
    assert config == {"shape": [1, 3, 320, 320], "stride": 32, "names": {str(i): n for i, n in enumerate(model.names)}}


@pytest.mark.parametrize("batch, h, w", [(1, 64, 96), (3, 224, 160), (2, 32, 32)])
def test_any_multiple_of_32_and_any_batch(exported, model, batch, h, w):
    _, module, _ = exported
    eager = fuse_conv_bn(copy.deepcopy(model))
    x = torch.rand(batch, 3, h, w)
    with torch.no_grad():
        out = module(x)
        want = eager(x)[0]
    assert isinstance(out, tuple) and len(out) == 1
    assert out[0].shape == (batch, 3 * sum((h // s) * (w // s) for s in (8, 16, 32)), 85)
    assert (out[0] - want).abs().max().item() <= 1e-4


def test_rows_are_level_then_anchor_then_row_then_column(exported):
    _, module, _ = exported
    with torch.no_grad():
        rows = module(torch.rand(1, 3, 64, 96))[0][0]
    level8 = rows[: 3 * 8 * 12].view(3, 8, 12, 85)  # stride-8 level: 3 anchors x 8 rows x 12 columns
    cx, cy = level8[..., 0], level8[..., 1]
    column_centres = (torch.arange(12) * 8 + 4).float()  # cell centres; decoded centres lie within +-1.5 cells
    assert ((cx - column_centres).abs() <= 12.01).all()
    assert ((cy - (torch.arange(8) * 8 + 4).float().view(8, 1)).abs() <= 12.01).all()
    widths = level8[..., 2]
    assert (widths[0] <= 4 * 10 + 1e-3).all() and (widths[2] <= 4 * 33 + 1e-3).all()


def test_no_device_or_dtype_baked_into_the_graph(exported):
    _, module, _ = exported
    code = "\n".join(m.code for _, m in module.named_modules() if hasattr(m, "code"))
    graph = str(module.inlined_graph)
    assert "cpu" not in code and "cpu" not in graph
    constants = [v for _, m in module.named_modules() if hasattr(m, "code_with_constants")
                 for v in m.code_with_constants[1].const_mapping.values()]
    # only the trace's scalars (x * 2, - 0.5, * stride): 0-dim tensors, which take part in arithmetic on any
    # device without changing the result's dtype; no tensor with a shape (that one would carry device and dtype)
    assert constants and all(not isinstance(v, torch.Tensor) or v.dim() == 0 for v in constants)
    assert not re.search(r"Device = prim::Constant", graph)
    assert not re.search(r"dtype=\d", code)


def test_dtype_follows_the_module(exported):
    _, module, _ = exported
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        reference = module(x)[0].double()
        double = copy.deepcopy(module).double()(x.double())[0]
        bf16 = copy.deepcopy(module).to(torch.bfloat16)(x.to(torch.bfloat16))[0]
    assert double.dtype == torch.float64 and (double - reference).abs().max() < 1e-3
    assert bf16.dtype == torch.bfloat16 and bf16.shape == reference.shape


def test_the_head_takes_bf16_features_and_decodes_in_float32(exported):
    """--dtype bf16 (jitvision.precision, the C++ convert_except_head): the body in bf16, the recorded head in float32.
    The trace reads the head's dtype from its weights at run time, so the same file also runs whole in one dtype."""
    _, module, extras = exported
    head = json.loads(extras["jitvision.json"])["mixed_precision"]["fp32_head"]
    assert str(module.inlined_graph).count("aten::type_as") == 3  # one per level, reading the weight's dtype
    mixed = copy.deepcopy(module)
    convert_except_head(mixed, torch.bfloat16, head)
    assert {p.dtype for n, p in mixed.named_parameters() if n.startswith(head + ".")} == {torch.float32}
    assert {p.dtype for n, p in mixed.named_parameters() if not n.startswith(head + ".")} == {torch.bfloat16}
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = module(x)[0]
        got = mixed(x.to(torch.bfloat16))[0]
        frozen = torch.jit.freeze(mixed.eval())(x.to(torch.bfloat16))[0]
    assert got.dtype == torch.float32 and frozen.dtype == torch.float32
    # random weights: only that the rows are the same rows, a bf16 rounding apart (pixels up to 128, probabilities)
    assert 0 < (got - want).abs().max().item() < 8 and torch.equal(got, frozen)
    with pytest.raises(ModelError, match="no submodule 'model.99'"):
        convert_except_head(copy.deepcopy(module), torch.bfloat16, "model.99")


def test_our_own_export_imports_again_with_the_same_outputs(exported, tmp_path):
    """`yolov5 import FILE.torchscript`: an older export of ours gets today's exporter (its weights unchanged)."""
    result, module, _ = exported
    again = tmp_path / "again.torchscript"
    export_torchscript(import_export(result.path).model, str(again), img_size=128)
    reloaded = load_model(str(again))
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(reloaded.module(x)[0], module(x)[0])
    with pytest.raises(CheckpointError, match="not a YOLOv5 detector exported by jitvision"):
        import_export(str(Path(__file__).resolve().parents[1] / "models" / "mnist.torchscript"))


def test_custom_class_count(tmp_path):
    names = ["cat", "dog", "fox"]
    result = export_torchscript(random_model(nc=3, names=names, seed=1), str(tmp_path / "nc3.torchscript"),
                                img_size=128)
    loaded = load_model(result.path)
    module, extras = loaded.module, loaded.extras
    meta = json.loads(extras["jitvision.json"])
    assert meta["nc"] == 3 and meta["names"] == names and result.max_abs_diff <= 1e-4
    with torch.no_grad():
        assert module(torch.rand(2, 3, 96, 64))[0].shape == (2, 3 * (12 * 8 + 6 * 4 + 3 * 2), 8)


def save_official_style(model: Yolov5, path, arch=None) -> None:
    """A checkpoint shaped like the official ones: the model object (fp16) carries ``yaml`` and ``names``."""
    model = copy.deepcopy(model).half()
    model.yaml = arch or model.arch
    model.names = [f"class{i}" for i in range(model.yaml["nc"])]
    torch.save({"epoch": -1, "best_fitness": None, "model": model, "ema": None, "optimizer": None}, path)


def test_import_round_trip_through_an_official_style_checkpoint(model, tmp_path):
    path = tmp_path / "random.pt"
    save_official_style(model, path)
    imported = import_checkpoint(str(path))
    want = copy.deepcopy(model).half().float().state_dict()
    got = imported.model.state_dict()
    assert list(got) == list(want)
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert imported.file == "random.pt" and len(imported.sha256) == 64


def test_strict_load_names_the_first_mismatch(model, tmp_path):
    path = tmp_path / "mismatch.pt"
    save_official_style(model, path, arch=yolov5_architecture("n", nc=3))
    with pytest.raises(CheckpointError, match=r"model\.24\.m\.0\.weight has shape \(255, 64, 1, 1\) in the "
                                              r"checkpoint, the architecture expects \(24, 64, 1, 1\)"):
        import_checkpoint(str(path))
    save_official_style(model, path, arch=yolov5_architecture("s"))
    with pytest.raises(CheckpointError, match=r"model\.0\.conv\.weight has shape \(16, 3, 6, 6\)"):
        import_checkpoint(str(path))


def test_failed_verification_writes_nothing(model, tmp_path, monkeypatch):
    out = tmp_path / "bad.torchscript"
    monkeypatch.setattr(export_module, "TOLERANCE", -1.0)
    with pytest.raises(ExportError, match="verification failed"):
        export_torchscript(model, str(out), img_size=64)
    assert not out.exists() and not list(tmp_path.iterdir())
    with pytest.raises(ExportError, match="not a multiple of the model stride 32"):
        export_torchscript(model, str(out), img_size=100)


def test_half_export_expects_half_input(model, tmp_path):
    result = export_torchscript(model, str(tmp_path / "half.torchscript"), img_size=64, half=True)
    loaded = load_model(result.path)
    module, extras = loaded.module, loaded.extras
    assert json.loads(extras["jitvision.json"])["half"] is True
    assert result.max_abs_diff <= 1e-4 and result.half_max_abs_diff <= 1e-4
    assert {p.dtype for p in module.parameters()} == {torch.float16}
    with torch.no_grad():
        assert module(torch.rand(1, 3, 64, 96).half())[0].dtype == torch.float16


def test_import_out_directory_is_one_error_line_and_leaves_nothing(model, tmp_path):
    checkpoint = tmp_path / "random.pt"
    save_official_style(model, checkpoint)
    target = tmp_path / "models"
    target.mkdir()
    proc = subprocess.run([sys.executable, "-m", "jitvision", "yolov5", "import", str(checkpoint), "--out",
                           str(target), "--img", "64"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 6, proc.stderr
    assert proc.stderr.strip() == f"jitvision: error: cannot write {target}: it is a directory; give a file path"
    assert target.is_dir() and not list(target.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "random.pt"]


@pytest.mark.parametrize("kind", ["fifo", "link-to-fifo", "device"])
def test_export_never_replaces_a_non_regular_file(model, tmp_path, kind):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    out = {"fifo": fifo, "device": Path(os.devnull)}.get(kind, tmp_path / "link.torchscript")
    if kind == "link-to-fifo":
        out.symlink_to(fifo)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(OutputError, match=f"cannot write {re.escape(str(out))}: it is not a regular file"):
        export_torchscript(model, str(out), img_size=64)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_export_replaces_a_regular_file_whole_with_the_usual_mode(model, tmp_path):
    out = tmp_path / "model.torchscript"
    out.write_text("old")
    umask = os.umask(0o022)
    try:
        export_torchscript(model, str(out), img_size=64)
    finally:
        os.umask(umask)
    assert load_model(str(out)).extras["jitvision.json"]
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["model.torchscript"]
