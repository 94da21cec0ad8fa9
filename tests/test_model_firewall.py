"""The model firewall (docs/security.md): hostile TorchScript files never run, good ones all load, and broken or
bombed archives give one clear line (exit 3) in both languages."""
import os
import random
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Tuple

import cv2
import pytest
import torch

from _support import REPO_ROOT, textured_photo
from jitvision.errors import ModelError
from jitvision.firewall import LIMITS, TRUST_ENV, check_model, code_names, pickle_globals, read_allowlist, used_names

BUNDLED = sorted((REPO_ROOT / "models").glob("*.torchscript"))
HOSTILE_KINDS = ("forward", "setstate")


class _Forward(torch.nn.Module):
    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker

    def forward(self, x):
        t = torch.from_file(self.marker, shared=True, size=16, dtype=torch.uint8)
        return x + t.fill_(65).sum()


class _SetState(torch.nn.Module):
    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker
        self.w = torch.nn.Parameter(torch.ones(2))

    def forward(self, x):
        return x * self.w.sum()

    @torch.jit.export
    def __getstate__(self) -> Tuple[torch.Tensor, str, bool]:
        return self.w, self.marker, self.training

    @torch.jit.export
    def __setstate__(self, state: Tuple[torch.Tensor, str, bool]) -> None:
        self.w, self.marker = state[0], state[1]
        t = torch.from_file(self.marker, shared=True, size=16, dtype=torch.uint8)
        self.training = bool(t.fill_(66).sum() >= 0) and state[2]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """{kind: (model path, marker path)}: a scripted module that writes `marker` through torch.from_file, from
    forward or as soon as it is loaded (__setstate__). Saved as .pt, as downloaded models often are."""
    root = tmp_path_factory.mktemp("hostile")
    made = {}
    for kind, cls in zip(HOSTILE_KINDS, (_Forward, _SetState)):
        marker = root / f"marker-{kind}"
        path = root / f"{kind}.pt"
        torch.jit.script(cls(str(marker))).save(str(path))
        assert "torch.from_file" in used_names(str(path))
        made[kind] = (path, marker)
    return made


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("img") / "photo.jpg"
    cv2.imwrite(str(path), textured_photo(240, 320))
    return path


def _run(cmd, env=None) -> subprocess.CompletedProcess:
    """``cmd`` without the caller's JITVISION_TRUST_MODEL, plus ``env``."""
    full_env = {**{k: v for k, v in os.environ.items() if k != TRUST_ENV}, **(env or {})}
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, env=full_env)


def _commands(jitvision: Path, model: Path, image: Path):
    py = [sys.executable, "-m", "jitvision"]
    return {"jitvision info": [jitvision, "info", model],
            "jitvision detect": [jitvision, "detect", "--model", model, "--source", image],
            "python info": [*py, "info", model],
            "python yolov5 detect": [*py, "yolov5", "detect", "--model", model, "--source", image]}


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
@pytest.mark.parametrize("command", ["jitvision info", "jitvision detect", "python info", "python yolov5 detect"])
def test_hostile_model_is_refused_before_it_runs(hostile, image, jitvision_bin, kind, command):
    path, marker = hostile[kind]
    proc = _run(_commands(jitvision_bin, path, image)[command])
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "torch.from_file" in lines[0] and str(path) in lines[0], proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("how", ["python --trust-model", "python env", "jitvision --trust-model", "jitvision env"])
def test_trust_loads_the_model_with_a_warning(hostile, jitvision_bin, how):
    path, marker = hostile["setstate"]
    marker.unlink(missing_ok=True)
    if how == "python --trust-model":
        proc = _run([sys.executable, "-m", "jitvision", "info", "--trust-model", path])
    elif how == "python env":
        proc = _run([sys.executable, "-m", "jitvision", "info", path], env={"JITVISION_TRUST_MODEL": "1"})
    elif how == "jitvision --trust-model":
        proc = _run([jitvision_bin, "info", "--trust-model", path])
    else:
        proc = _run([jitvision_bin, "info", path], env={"JITVISION_TRUST_MODEL": "1"})
    try:
        assert proc.returncode == 0, proc.stderr
        assert "without the firewall check" in proc.stderr
        assert marker.read_bytes() == b"B" * 16  # the check was really skipped: loading ran __setstate__
    finally:
        marker.unlink(missing_ok=True)


def test_bundled_models_pass_in_both_languages(jitvision_bin):
    for path in BUNDLED:
        check_model(str(path))
        proc = _run([jitvision_bin, "info", path])
        assert proc.returncode == 0, proc.stderr


def test_our_exports_pass(yolov5n_exports, tmp_path):
    from jitvision.mnist.export import export_module
    from jitvision.mnist.model import DigitNet

    paths = list(yolov5n_exports.values())
    for method in ("trace", "script"):
        paths.append(tmp_path / f"mnist-{method}.torchscript")
        export_module(DigitNet(), method).save(str(paths[-1]))
    for path in paths:
        check_model(str(path))


def test_regenerating_the_list_adds_what_a_model_uses(hostile, tmp_path, monkeypatch, capsys):
    from jitvision import firewall

    listed = tmp_path / "allow.txt"
    listed.write_text(firewall.ALLOWLIST_FILE.read_text())
    monkeypatch.setattr(firewall, "ALLOWLIST_FILE", listed)
    path = str(hostile["forward"][0])
    assert firewall.main([path]) == 0
    assert capsys.readouterr().out.split() == ["torch.from_file"]
    assert "torch.from_file" not in firewall.read_allowlist(listed)
    firewall.main([path, "--write"])
    assert "torch.from_file" in firewall.read_allowlist(listed)
    capsys.readouterr()
    firewall.main([path])
    assert capsys.readouterr().out.strip() == "nothing missing"


def test_pickle_imports_outside_the_list_are_named():
    assert list(pickle_globals(b"\x80\x02cos\nsystem\n)R.")) == ["pickle:os.system"]
    assert list(pickle_globals(b"\x80\x04\x8c\x02os\x8c\x06system\x93.")) == ["pickle:STACK_GLOBAL"]
    assert list(pickle_globals(b"\x80\x02\x8d\xf5" + b"\xff" * 7 + b".")) == ["pickle:<malformed pickle>"]
    assert "pickle:os.system" not in read_allowlist()


def test_code_names_see_through_spacing_but_not_strings():
    names = list(code_names("x = torch . from_file('torch.no')\n# torch.c\ny = \"\"\"ops.no\"\"\"\n"
                            "z = self.torch.save(x)\nw = ops.myns.op(1.5, torch)\n"))
    assert names == ["torch.from_file", "ops.myns.op", "torch"]


# --- fuzz-style: broken, bombed and lying archives ---------------------------------------------------------------

def _refused(path: Path, jitvision_bin=None, needle: str = "") -> None:
    with pytest.raises(ModelError) as err:
        check_model(str(path))
    assert "\n" not in str(err.value) and needle in str(err.value)
    if jitvision_bin is not None:
        proc = _run([jitvision_bin, "info", path])
        assert proc.returncode == 3 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert needle in proc.stderr


def _copy_with(path: Path, source: Path, name: str, data: bytes, compress=zipfile.ZIP_DEFLATED) -> Path:
    """``source`` with record ``name`` added or replaced."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            if info.filename != name:
                out.writestr(info, src.read(info))
        out.writestr(name, data, compress_type=compress)
    return path


@pytest.mark.parametrize("record", ["byteorder", ".data/version", "extra/jitvision.json", "code/__torch__/x.py"])
def test_bombed_records_are_refused_before_they_are_read(tmp_path, jitvision_bin, record):
    source = BUNDLED[0]
    prefix = zipfile.ZipFile(source).namelist()[0].split("/")[0]
    size = LIMITS["code"] + 1 if record.startswith("code") else 64 << 20
    path = _copy_with(tmp_path / "bomb.pt", source, f"{prefix}/{record}", bytes(size))
    assert path.stat().st_size < source.stat().st_size + (1 << 20)  # a small record that inflates past the limit
    _refused(path, jitvision_bin, record)


def test_lying_record_sizes_are_refused(tmp_path, jitvision_bin):
    source = REPO_ROOT / "models" / "mnist.torchscript"
    name = next(n for n in zipfile.ZipFile(source).namelist() if n.endswith("code/__torch__/jitvision/mnist/model.py"))
    data = bytearray(source.read_bytes())
    info = zipfile.ZipFile(source).getinfo(name)
    true_size = info.file_size.to_bytes(4, "little")
    assert data.count(true_size) >= 2
    for at in (i for i in range(len(data)) if data[i:i + 4] == true_size):  # local header and central directory
        data[at:at + 4] = (info.file_size // 2).to_bytes(4, "little")
    path = tmp_path / "lying.pt"
    path.write_bytes(bytes(data))
    _refused(path, jitvision_bin)


def test_truncated_and_random_files_give_one_line(tmp_path, jitvision_bin):
    good = BUNDLED[0].read_bytes()
    rng = random.Random(3)
    path = tmp_path / "broken.pt"
    for i in range(60):
        if i % 3 == 0:
            data = good[:rng.randrange(len(good))]
        elif i % 3 == 1:
            data = bytearray(good)
            for _ in range(8):
                data[rng.randrange(len(data))] = rng.randrange(256)
            data = bytes(data)
        else:
            data = b"PK\x03\x04" + bytes(rng.randrange(256) for _ in range(rng.randrange(4, 4096)))
        path.write_bytes(data)
        try:
            check_model(str(path))
        except ModelError as exc:
            assert "\n" not in str(exc)
        if i % 10 == 0:
            proc = _run([jitvision_bin, "info", path])
            assert proc.returncode in (0, 3) and (proc.returncode == 0 or len(proc.stderr.strip().splitlines()) == 1)
