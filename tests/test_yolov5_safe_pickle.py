"""The restricted unpickler: plain object state is read, code in the pickle is refused and never runs."""
import codecs
import collections
import os
import zipfile

import numpy as np
import pytest
import torch

from jitvision.__main__ import main
from jitvision.yolov5.checkpoint import import_checkpoint
from jitvision.yolov5.errors import CheckpointError, UnsafeCheckpointError
from jitvision.yolov5.safe_pickle import Call, Placeholder, safe_load


class RunsCommand:
    """Unpickling this with a plain unpickler runs a shell command."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class EvaluatesCode:
    def __init__(self, source):
        self.source = source

    def __reduce__(self):
        return eval, (self.source,)


class EncodesText:
    def __reduce__(self):
        return codecs.encode, ("payload", "rot13")


class PlainState:
    def __init__(self):
        self.weight = torch.arange(6, dtype=torch.float16).view(2, 3)
        self.names = ["a", "b"]
        self.tags = {"x", "y"}


@pytest.mark.parametrize("make_payload, called", [
    (lambda marker: RunsCommand(f"touch {marker}"), "system"),
    (lambda marker: EvaluatesCode(f"open({str(marker)!r}, 'w')"), "eval"),
    (lambda marker: EncodesText(), "_codecs.encode"),
])
def test_code_in_the_pickle_is_refused_and_never_runs(tmp_path, make_payload, called):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    torch.save({"epoch": 1, "model": collections.OrderedDict(x=make_payload(marker))}, path)
    with pytest.raises(UnsafeCheckpointError, match=rf"refused: .*{called}.*nothing was executed"):
        import_checkpoint(str(path))
    assert not marker.exists()


def test_cli_refuses_it_as_a_model_error(tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": RunsCommand(f"touch {marker}")}, path)
    out = tmp_path / "never.torchscript"
    assert main(["yolov5", "import", str(path), "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert err.startswith("jitvision: error: refused:") and "system" in err
    assert not marker.exists() and not out.exists()


def test_protocol_0_inst_payload_is_refused(tmp_path):
    marker = tmp_path / "payload-ran"
    data = f"(S'touch {marker}'\nios\nsystem\n.".encode()  # INST opcode: calls os.system
    path = tmp_path / "inst.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", data)
    with pytest.raises(UnsafeCheckpointError):
        safe_load(str(path))
    assert not marker.exists()


def test_objects_become_inert_placeholders_with_their_state(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"obj": PlainState()}, path)
    loaded = safe_load(str(path))["obj"]
    assert isinstance(loaded, Placeholder) and loaded.qualname.endswith("PlainState")
    assert torch.equal(loaded.weight, torch.arange(6, dtype=torch.float16).view(2, 3))
    assert loaded.names == ["a", "b"] and loaded.tags == {"x", "y"}


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a torch zip archive"):
        import_checkpoint(str(text))
    state = tmp_path / "state.pt"
    torch.save({"conv.weight": torch.zeros(2)}, state)
    with pytest.raises(CheckpointError, match="bare state dict"):
        import_checkpoint(str(state))
    with pytest.raises(CheckpointError, match="does not exist"):
        import_checkpoint(str(tmp_path / "missing.pt"))


def test_pickle_protocol_independent(tmp_path):
    path = tmp_path / "p4.pt"
    torch.save({"obj": PlainState()}, path, pickle_protocol=4)
    assert safe_load(str(path))["obj"].names == ["a", "b"]


def test_numpy_metrics_of_training_checkpoints_are_read_inertly(tmp_path):
    path = tmp_path / "trained.pt"
    torch.save({"best_fitness": np.array([0.5]), "epoch": np.int64(3), "date": b"2024"}, path)
    loaded = safe_load(str(path))
    assert isinstance(loaded["best_fitness"], Call) and loaded["best_fitness"].qualname.endswith("_reconstruct")
    assert isinstance(loaded["epoch"], Call) and loaded["date"] == b"2024"


def test_declared_sizes_are_checked_against_the_storage_in_the_file(tmp_path):
    # One float in the file, viewed with stride 0 as 2^31 of them: 8 GiB once the model copies it.
    path = tmp_path / "stride0.pt"
    torch.save({"w": torch.zeros(1).expand(2 ** 31)}, path)
    assert path.stat().st_size < 4096
    with pytest.raises(CheckpointError, match="more than the 1 elements its storage holds"):
        safe_load(str(path))
    views = tmp_path / "views.pt"
    base = torch.arange(12.0)
    torch.save({"a": base[2:8].view(2, 3), "b": base[::3]}, views)
    loaded = safe_load(str(views))
    assert loaded["a"].tolist() == [[2, 3, 4], [5, 6, 7]] and loaded["b"].tolist() == [0, 3, 6, 9]


def test_compressed_byteorder_bomb_is_refused(tmp_path):
    path = tmp_path / "bomb.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with zipfile.ZipFile(path) as src:
        prefix = src.namelist()[0].split("/")[0]
        records = [(info, src.read(info)) for info in src.infolist() if not info.filename.endswith("/byteorder")]
    with zipfile.ZipFile(path, "w") as out:
        for info, data in records:
            out.writestr(info, data)
        out.writestr(f"{prefix}/byteorder", bytes(64 << 20), compress_type=zipfile.ZIP_DEFLATED)
    with pytest.raises(CheckpointError, match="byteorder is compressed"):
        safe_load(str(path))
