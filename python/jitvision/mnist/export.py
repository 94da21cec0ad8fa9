"""TorchScript export of the digit model: trace or script, verify against eager, embed the metadata.

The metadata travels inside the archive as the extra file ``jitvision.json``; the C++ app reads its keys.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from jitvision.errors import ExportError
from jitvision.mnist.model import NUM_CLASSES
from jitvision.mnist.train import MEAN, PIXEL_SCALE, STD
from jitvision.model_file import METADATA_FILE, load_model

METADATA_FORMAT = "jitvision/1"
EXPORT_METHODS = ("trace", "script")
TOLERANCE = 1e-4
CHECK_BATCH_SIZES = (1, 7, 64)


@dataclass
class Verification:
    max_abs_logit_diff: float
    argmax_agree: bool

    def as_dict(self) -> dict:
        return {"max_abs_logit_diff": self.max_abs_logit_diff, "argmax_agree": self.argmax_agree}


def export_module(model: torch.nn.Module, method: str) -> torch.jit.ScriptModule:
    """Trace (on one example batch) or script an eval-mode CPU copy of ``model``."""
    if method not in EXPORT_METHODS:
        raise ValueError(f"unknown export method {method!r}, expected one of {EXPORT_METHODS}")
    model = model.eval().cpu()
    if method == "script":
        return torch.jit.script(model)
    example = torch.zeros(2, 1, 28, 28)
    return torch.jit.trace(model, example)


def verify(eager: torch.nn.Module, exported: torch.nn.Module, inputs: torch.Tensor,
           batch_size: int = 500) -> Verification:
    """Compare exported with eager on all ``inputs`` (in batches) and on batch sizes 1, 7 and 64.

    Raises ExportError when an argmax differs or a logit differs by more than 1e-4.
    """
    eager = eager.eval().cpu()
    batches = [inputs[i:i + batch_size] for i in range(0, len(inputs), batch_size)]
    batches += [inputs[torch.arange(n) % len(inputs)] for n in CHECK_BATCH_SIZES]
    max_diff, agree = 0.0, True
    with torch.no_grad():
        for batch in batches:
            want, got = eager(batch), exported(batch)
            if got.shape != want.shape:
                raise ExportError(f"exported model gave shape {list(got.shape)} for a batch of "
                                              f"{len(batch)}, the eager model {list(want.shape)}")
            max_diff = max(max_diff, (got - want).abs().max().item())
            agree = agree and bool((got.argmax(1) == want.argmax(1)).all())
    result = Verification(max_diff, agree)
    if not agree or not max_diff <= TOLERANCE:
        raise ExportError(f"exported model differs from the eager one: max abs logit difference "
                                      f"{max_diff:.3g} (allowed {TOLERANCE}), argmax agree everywhere: {agree}")
    return result


def build_metadata(method: str, training: dict, heldout_accuracy: float, verification: Verification) -> dict:
    """The ``jitvision.json`` document; ``training`` holds data, description, image counts, seed and epochs."""
    return {
        "format": METADATA_FORMAT,
        "task": "digits",
        "export": method,
        "input": {"shape": [1, 1, 28, 28], "layout": "NCHW", "dtype": "float32", "polarity": "light-on-dark"},
        "normalize": {"scale": PIXEL_SCALE, "mean": [MEAN], "std": [STD]},
        "labels": [str(i) for i in range(NUM_CLASSES)],
        "training": training,
        "heldout_accuracy": heldout_accuracy,
        "verification": verification.as_dict(),
        "torch_version": torch.__version__,
    }


def save(module: torch.jit.ScriptModule, path: str | Path, metadata: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(module, str(path), _extra_files={METADATA_FILE: json.dumps(metadata, indent=1)})


def export_verified(model: torch.nn.Module, method: str, path: str | Path, heldout_inputs: torch.Tensor,
                    heldout_labels: torch.Tensor, training: dict) -> dict:
    """Export, verify, save with metadata, then reload the file and verify it again. Returns the metadata."""
    exported = export_module(model, method)
    verification = verify(model, exported, heldout_inputs)
    with torch.no_grad():
        predicted = torch.cat([exported(b) for b in heldout_inputs.split(500)]).argmax(1)
    heldout_accuracy = (predicted == heldout_labels).double().mean().item()
    metadata = build_metadata(method, training, heldout_accuracy, verification)
    save(exported, path, metadata)
    verify(model, load_model(str(path)).module, heldout_inputs)
    return metadata


PT2_MAX_BATCH = 1024
PT2_CHECK_INPUTS = 256  # random normalised digits the package is checked on, besides CHECK_BATCH_SIZES


def eager_from_torchscript(module: torch.jit.ScriptModule, path: str) -> torch.nn.Module:
    """The :class:`DigitNet` whose weights a TorchScript digit model holds (sizes read from its weights)."""
    from jitvision.mnist.model import DigitNet

    state = module.state_dict()
    try:
        net = DigitNet(width=state["features.0.0.weight"].shape[0], hidden=state["classifier.1.weight"].shape[0])
        net.load_state_dict(state, strict=True)
    except (KeyError, RuntimeError) as exc:
        raise ExportError(f"{path} does not hold the digit network of `mnist train`: {str(exc).splitlines()[0]}") \
            from None
    return net.eval()


def export_pt2(model_path: str, out: str, device: str = "cpu") -> dict:
    """Compile a TorchScript digit model (from ``mnist train``) into an AOTInductor package with a dynamic batch
    (1 to PT2_MAX_BATCH), verified against the eager network on random digits; returns the package's metadata."""
    from torch.export import Dim

    from jitvision import pt2
    from jitvision.model_file import read_contract

    pt2.check_target("fp32", device)
    loaded = load_model(str(model_path))
    read_contract(loaded).as_classifier()  # ModelError for anything but a digit model
    eager = eager_from_torchscript(loaded.module, str(model_path)).to(device)
    example = torch.zeros(2, 1, 28, 28, device=device)
    with torch.no_grad():
        program = torch.export.export(eager, (example,),
                                      dynamic_shapes=({0: Dim("batch", min=1, max=PT2_MAX_BATCH)},))
        metadata = dict(loaded.metadata, export="pt2", dtype="fp32", device=device, max_batch=PT2_MAX_BATCH)
        inputs = torch.randn(PT2_CHECK_INPUTS, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)
        checked = {}

        def check(package_path: str) -> None:
            checked["verification"] = verify(eager, pt2.load_package(package_path, device), inputs)

        metadata["verification"] = {"tolerance": TOLERANCE, "inputs": "random", "batch_sizes": list(CHECK_BATCH_SIZES)}
        pt2.compile_package(program, out, {METADATA_FILE: json.dumps(metadata, indent=1)}, check)
    metadata["verification"].update(checked["verification"].as_dict())
    return metadata
