"""Importing one of our own TorchScript detector exports again, so that an older file gets what today's exporter
writes (e.g. the float32 Detect head that ``--dtype bf16`` needs) without its training checkpoint.

The file is loaded after the model firewall (:func:`jitvision.model_file.load_model`); its jitvision.json gives the
class names, its weights (Conv+BN fused, as exported) give the published YOLOv5 scale they fit.
"""
import os
import zipfile
from typing import Dict

import torch

from jitvision.model_file import file_format, load_model
from jitvision.yolov5.checkpoint import ImportedCheckpoint, load_strict, sha256_of
from jitvision.yolov5.errors import CheckpointError
from jitvision.yolov5.model import SCALES, Yolov5, build_layers, fuse_conv_bn, yolov5_architecture

_BN_KEYS = (".bn.weight", ".bn.bias", ".bn.running_mean", ".bn.running_var", ".bn.num_batches_tracked")


def _fits(arch: Dict, state: Dict[str, torch.Tensor]) -> bool:
    """Whether the fused weights ``state`` have every convolution of ``arch`` at its shape."""
    with torch.device("meta"):
        planned = build_layers(arch)
    for key, tensor in planned.state_dict().items():
        if key.endswith(_BN_KEYS):
            continue
        theirs = state.get(f"model.{key}")
        if theirs is None or theirs.shape != tensor.shape:
            return False
    return True


def is_torchscript(path: str) -> bool:
    """Whether ``path`` is a TorchScript archive (anything else goes to the checkpoint reader, which names it)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return file_format(archive.namelist()) == "torchscript"
    except (OSError, zipfile.BadZipFile):
        return False


def import_export(path: str) -> ImportedCheckpoint:
    """The eager model (float32, eval mode, fused) of a YOLOv5 TorchScript file that jitvision exported."""
    loaded = load_model(path)
    meta = loaded.metadata or {}
    if meta.get("task") != "detect" or meta.get("arch") != "yolov5":
        raise CheckpointError(f"{path} is TorchScript but not a YOLOv5 detector exported by jitvision (its "
                              "jitvision.json does not say task detect, arch yolov5): import the .pt checkpoint it "
                              "was made from")
    state = {k: v.float() for k, v in loaded.module.state_dict().items()}
    try:
        nc, names = int(meta["nc"]), [str(n) for n in meta["names"]]
        scales = [s for s in SCALES if _fits(yolov5_architecture(s, nc), state)]
        if not scales:
            raise CheckpointError(f"the weights in {path} fit none of the published YOLOv5 scales "
                                  f"({', '.join(SCALES)}); import the .pt checkpoint it was made from")
        model = fuse_conv_bn(Yolov5(yolov5_architecture(scales[0], nc), names=names).eval())
        load_strict(model, state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} cannot be imported again: {type(exc).__name__}: {exc}") from None
    if model.strides != list(meta.get("strides", model.strides)):
        raise CheckpointError(f"{path} records strides {meta['strides']}; its weights give {model.strides}")
    return ImportedCheckpoint(model, os.path.basename(path), sha256_of(path))
