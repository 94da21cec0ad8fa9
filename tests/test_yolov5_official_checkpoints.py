"""Every kind of official YOLOv5 checkpoint imports (train.py with its `opt` paths and optimizer state, the stripped
best.pt, a hub wrapper, a bare model object), our own training checkpoints export, and other pickles get one line.

The checkpoints are written the way the official tools write them (facts in /work/shared/YOLOV5.md), from our own
model code: the pickled module classes carry the official class names."""
import copy
import datetime
import pathlib
import subprocess

import numpy as np
import pytest
import torch
from torch import nn

from jitvision.model_file import load_model
from jitvision.yolov5.checkpoint import CHECKPOINT_FORMAT, import_checkpoint
from jitvision.yolov5.errors import UnsafeCheckpointError
from jitvision.yolov5.model import Yolov5, yolov5_architecture
from jitvision.yolov5.safe_pickle import safe_load

pytestmark = pytest.mark.usefixtures("one_torch_thread")
NAMES = ["person", "bicycle", "car"]


def random_model(seed: int) -> Yolov5:
    torch.manual_seed(seed)
    model = Yolov5(yolov5_architecture("n", nc=len(NAMES)), names=NAMES)
    for bn in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


def official_object(model: Yolov5) -> Yolov5:
    """The model object as train.py pickles it: fp16, with ``yaml`` (the architecture) and ``names``."""
    obj = copy.deepcopy(model).half()
    obj.yaml, obj.names = model.arch, list(NAMES)
    return obj


def train_py_checkpoint(model: Yolov5, ema: Yolov5) -> dict:
    """What the official train.py saves as last.pt mid-training."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.937, nesterov=True)
    model.train()
    model(torch.rand(2, 3, 64, 64))[0].float().mean().backward()
    optimizer.step()  # momentum buffers in the optimizer state
    model.eval()
    opt = {"weights": pathlib.PosixPath("yolov5n.pt"), "cfg": "", "data": pathlib.PosixPath("data", "coco128.yaml"),
           "hyp": pathlib.PosixPath("data", "hyps", "hyp.scratch-low.yaml"), "epochs": 3, "batch_size": 16,
           "imgsz": 640, "project": pathlib.PosixPath("/home/user/yolov5/runs/train"), "name": "exp",
           "save_dir": "runs/train/exp", "windows_copy": pathlib.PureWindowsPath("C:/data/coco128.yaml"),
           "rect": False, "noautoanchor": False, "device": "", "freeze": [0]}
    return {"epoch": 2, "best_fitness": np.float64(0.125), "model": official_object(model),
            "ema": official_object(ema), "updates": 96, "optimizer": optimizer.state_dict(), "opt": opt,
            "git": {"remote": "https://example.invalid/yolov5", "branch": "master", "commit": "0123abc"},
            "date": datetime.datetime(2026, 11, 30, 12, 0).isoformat()}


class AutoShape(nn.Module):  # the hub's wrapper classes, by name: torch.hub.load(...) objects saved whole
    def __init__(self, model):
        super().__init__()
        self.model = model


class DetectMultiBackend(AutoShape):
    pass


@pytest.fixture(scope="module")
def models():
    return random_model(1), random_model(2)  # (model, ema): import must take the EMA weights


def fp16_rounded(model: Yolov5) -> Yolov5:
    return copy.deepcopy(model).half().float().eval()


def test_path_objects_in_opt_are_rebuilt_as_strings(models, tmp_path):
    path = tmp_path / "last.pt"
    torch.save(train_py_checkpoint(*copy.deepcopy(models)), path)
    opt = safe_load(str(path))["opt"]
    assert opt["hyp"] == "data/hyps/hyp.scratch-low.yaml" and opt["weights"] == "yolov5n.pt"
    assert opt["project"] == "/home/user/yolov5/runs/train" and opt["windows_copy"] == "C:\\data\\coco128.yaml"


class NotAPath:
    def __reduce__(self):
        return pathlib.PosixPath, (1, "x")  # a path class called with something other than its string parts


def test_a_path_class_called_with_other_arguments_is_refused(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"opt": {"hyp": NotAPath()}}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"pathlib.PosixPath with \(1, 'x'\)"):
        safe_load(str(path))


def test_train_py_checkpoint_imports_and_matches_the_eager_ema(models, tmp_path, python_exe):
    model, ema = copy.deepcopy(models)
    checkpoint, out = tmp_path / "last.pt", tmp_path / "last.torchscript"
    torch.save(train_py_checkpoint(model, ema), checkpoint)
    proc = subprocess.run([python_exe, "-m", "jitvision", "yolov5", "import", str(checkpoint), "--out", str(out),
                           "--img", "128"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "imported last.pt" in proc.stdout and "3 classes" in proc.stdout
    x = torch.rand(2, 3, 96, 128)
    with torch.no_grad():
        want = fp16_rounded(ema)(x)[0]
        got = load_model(str(out)).module(x)[0]
        other = fp16_rounded(model)(x)[0]
    assert (got - want).abs().max().item() <= 1e-4
    assert (got - other).abs().max().item() > 1e-2  # it is the EMA, not the raw model


@pytest.mark.parametrize("kind", ["stripped", "hub", "bare"])
def test_other_official_checkpoint_kinds_import(models, tmp_path, kind):
    ema = models[1]
    obj = official_object(ema)
    saved = {"stripped": {"epoch": -1, "best_fitness": None, "model": obj, "ema": None, "updates": None,
                          "optimizer": None, "opt": {"data": pathlib.PosixPath("data.yaml")}, "git": None,
                          "date": "2026-11-30T12:00:00"},
             "hub": AutoShape(DetectMultiBackend(obj)),
             "bare": obj}[kind]
    path = tmp_path / f"{kind}.pt"
    torch.save(saved, path)
    imported = import_checkpoint(str(path))
    want = fp16_rounded(ema).state_dict()
    assert imported.model.names == NAMES
    assert all(torch.equal(imported.model.state_dict()[k], want[k]) for k in want)


def run_import(python_exe, path, out) -> subprocess.CompletedProcess:
    return subprocess.run([python_exe, "-m", "jitvision", "yolov5", "import", str(path), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("saved, described", [
    (nn.Linear(2, 2), "a pickled torch.nn.modules.linear.Linear"),
    ({"epoch": 3, "notes": "x"}, "a dict (keys 'epoch', 'notes')"),
    ([1, 2, 3], "a list"),
])
def test_a_pickle_that_is_not_yolov5_gets_one_line(tmp_path, python_exe, saved, described):
    path, out = tmp_path / "other.pt", tmp_path / "never.torchscript"
    torch.save(saved, path)
    proc = run_import(python_exe, path, out)
    assert proc.returncode == 3
    assert proc.stderr == (f"jitvision: error: {path} holds {described}, not a YOLOv5 model: import takes checkpoints "
                           "written by the official train.py, export.py or hub, or by `yolov5 train`\n")
    assert not out.exists()


def test_our_training_checkpoint_exports(models, tmp_path, python_exe):
    model, ema = models
    path, out = tmp_path / "best.pt", tmp_path / "best.torchscript"
    torch.save({"format": CHECKPOINT_FORMAT, "arch": model.arch, "names": NAMES, "model": model.state_dict(),
                "ema": ema.state_dict(), "options": {"img": 128}}, path)
    proc = subprocess.run([python_exe, "-m", "jitvision", "yolov5", "export", str(path), "--out", str(out),
                           "--img", "64"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert (load_model(str(out)).module(x)[0] - ema(x)[0]).abs().max().item() <= 1e-4
