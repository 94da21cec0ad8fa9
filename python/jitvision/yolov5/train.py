"""Training YOLOv5 on a YOLO-format data set, optionally starting from an official checkpoint.

SGD (momentum 0.937, Nesterov) or AdamW with three parameter groups (convolution weights with weight decay;
BatchNorm weights and all biases without), linear warm-up of learning rate and momentum, then a cosine or linear
decay to ``lrf`` x ``lr0``; an exponential moving average (EMA) of the weights is validated and saved; AMP on CUDA.

Each run writes to its own folder RUN = ``PROJECT/NAME`` numbered by :func:`jitvision.runs.new_run_dir` (default
``runs/train/exp``, then ``exp2``, ...); a resumed run keeps writing to the folder recorded in its checkpoint.
Checkpoints (``RUN/weights/last.pt`` every epoch, ``best.pt`` at the best fitness = 0.1 mAP@0.5 + 0.9 mAP@0.5:0.95)
are plain dicts of tensors and builtins, loadable with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from jitvision.device import pick_device
from jitvision.errors import UsageError
from jitvision.model_file import is_checkpoint
from jitvision.runs import new_run_dir
from jitvision.yolov5.augment import DEFAULT_HYP
from jitvision.yolov5.checkpoint import CHECKPOINT_FORMAT, import_checkpoint, sha256_of
from jitvision.yolov5.dataset import YoloDataset, load_data_config
from jitvision.yolov5.errors import CheckpointError
from jitvision.yolov5.loss import YoloLoss, init_detect_biases, raw_outputs
from jitvision.yolov5.model import SCALES, Yolov5, yolov5_architecture
from jitvision.yolov5.val import evaluate, load_val_set

TRAIN_HYP: Dict[str, float] = {
    "lr0": 0.01, "lrf": 0.01, "momentum": 0.937, "weight_decay": 5e-4, "warmup_epochs": 3.0,
    "warmup_momentum": 0.8, "warmup_bias_lr": 0.1, "box": 0.05, "obj": 1.0, "cls": 0.5, "anchor_t": 4.0,
    "ema_decay": 0.9999, "ema_tau": 2000.0,
}
NOMINAL_BATCH = 64  # weight decay is given for this batch size and scaled to the real one


class TrainError(UsageError):
    """Training cannot start or continue as asked."""


@dataclass
class TrainOptions:
    data: str
    cfg: Optional[str] = None  # n, s, m, l, x; default: the architecture of --weights
    weights: Optional[str] = None
    img: int = 320
    epochs: int = 100
    batch: int = 16
    device: str = "auto"
    workers: int = 2
    project: str = "runs/train"  # the run folder is a new PROJECT/NAME, NAME2, ... (jitvision.runs.new_run_dir)
    name: str = "exp"
    exist_ok: bool = False  # reuse PROJECT/NAME instead of numbering a new folder
    optimizer: str = "sgd"
    cos_lr: bool = True
    hyp: Dict[str, float] = field(default_factory=dict)  # overrides of TRAIN_HYP and augmentation settings
    seed: int = 0
    export: bool = True  # export best.pt to TorchScript at the end
    export_method: str = "trace"  # how: trace, script or mixed (jitvision.yolov5.export.EXPORT_METHODS)
    freeze: int = 0  # keep the first N layers as loaded (fine-tuning: the early layers cost most to train)


class ModelEMA:
    """Exponential moving average of every floating-point weight and buffer; the decay ramps up from 0 as
    ``decay * (1 - exp(-updates / tau))`` so early averages are not dominated by the random start."""

    def __init__(self, model: nn.Module, decay: float, tau: float, updates: int = 0):
        self.module = copy.deepcopy(model).eval()
        self.decay, self.tau, self.updates = decay, tau, updates
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / self.tau))
        current = model.state_dict()
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(d).add_(current[name].detach(), alpha=1 - d)


def parameter_groups(model: nn.Module):
    """(weights with decay, BatchNorm weights, biases), trainable ones only."""
    decayed, bn_weights, biases = [], [], []
    for module in model.modules():
        bias, weight = getattr(module, "bias", None), getattr(module, "weight", None)
        if isinstance(bias, nn.Parameter) and bias.requires_grad:
            biases.append(bias)
        if isinstance(weight, nn.Parameter) and weight.requires_grad:
            (bn_weights if isinstance(module, nn.BatchNorm2d) else decayed).append(weight)
    return decayed, bn_weights, biases


def make_optimizer(model: nn.Module, name: str, hyp: Dict[str, float], batch: int) -> torch.optim.Optimizer:
    decayed, bn_weights, biases = parameter_groups(model)
    decay = hyp["weight_decay"] * batch / NOMINAL_BATCH
    if name == "sgd":
        opt = torch.optim.SGD(bn_weights, lr=hyp["lr0"], momentum=hyp["momentum"], nesterov=True)
    elif name == "adamw":
        opt = torch.optim.AdamW(bn_weights, lr=hyp["lr0"], betas=(hyp["momentum"], 0.999), weight_decay=0.0)
    else:
        raise TrainError(f"unknown optimizer {name!r} (sgd or adamw)")
    opt.add_param_group({"params": decayed, "weight_decay": decay})
    opt.add_param_group({"params": biases, "weight_decay": 0.0})
    return opt


def lr_factor(epoch: float, epochs: int, lrf: float, cosine: bool) -> float:
    if cosine:
        return ((1 - math.cos(epoch * math.pi / epochs)) / 2) * (lrf - 1) + 1
    return (1 - epoch / epochs) * (1 - lrf) + lrf


def transfer_weights(model: Yolov5, source: Dict[str, torch.Tensor]) -> int:
    """Copy every tensor whose name and shape match (the Detect convolutions differ when nc does)."""
    state = model.state_dict()
    matched = {k: v for k, v in source.items() if k in state and v.shape == state[k].shape}
    state.update({k: v.to(state[k].dtype) for k, v in matched.items()})
    model.load_state_dict(state)
    return len(matched)


def load_training_checkpoint(path: str) -> Dict:
    if not is_checkpoint(path):
        raise CheckpointError(f"{path} is not a jitvision training checkpoint (not a torch.save archive)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not ours"
        raise CheckpointError(f"{path} is not a jitvision training checkpoint: {type(exc).__name__}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a jitvision training checkpoint ({CHECKPOINT_FORMAT})")
    return ckpt


def is_training_checkpoint(path: str) -> bool:
    try:
        load_training_checkpoint(path)
    except CheckpointError:
        return False
    return True


def model_from_checkpoint(ckpt: Dict, use_ema: bool = True) -> Yolov5:
    """The model of a training checkpoint (its EMA weights unless ``use_ema`` is False), float32, eval mode."""
    model = Yolov5(ckpt["arch"], names=ckpt["names"])
    state = ckpt["ema"] if use_ema and ckpt.get("ema") is not None else ckpt["model"]
    model.load_state_dict(state)
    return model.float().eval()


def _starting_model(opts: TrainOptions, nc: int, names: List[str]) -> Yolov5:
    source: Optional[Dict[str, torch.Tensor]] = None
    arch = None
    if opts.weights:
        if is_training_checkpoint(opts.weights):
            ckpt = load_training_checkpoint(opts.weights)
            arch, source = ckpt["arch"], ckpt["ema"] or ckpt["model"]
        else:
            imported = import_checkpoint(opts.weights).model
            arch, source = imported.arch, imported.state_dict()
    if opts.cfg:
        if opts.cfg not in SCALES:
            raise TrainError(f"--cfg {opts.cfg}: expected one of {', '.join(SCALES)}")
        arch = yolov5_architecture(opts.cfg, nc)
    elif arch is None:
        raise TrainError("give --cfg (n, s, m, l, x) or --weights to start from")
    arch = {**copy.deepcopy(arch), "nc": nc}
    model = Yolov5(arch, names=names)
    init_detect_biases(model)
    if source is not None:
        n = transfer_weights(model, source)
        print(f"transferred {n}/{len(model.state_dict())} tensors from {opts.weights}")
    return model


def _checkpoint(model, ema, optimizer, epoch, best_fitness, opts, metrics, run_dir) -> Dict:
    return {
        "format": CHECKPOINT_FORMAT, "epoch": epoch, "run_dir": str(run_dir), "arch": model.arch,
        "names": list(model.names),
        "model": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "ema": {k: v.detach().clone() for k, v in ema.module.state_dict().items()}, "ema_updates": ema.updates,
        "optimizer": optimizer.state_dict(), "best_fitness": best_fitness, "options": dataclasses.asdict(opts),
        "metrics": metrics, "torch_version": str(torch.__version__),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def _resumed_options(ckpt: Dict):
    """The options and run folder of the run a checkpoint belongs to (checkpoints from before run folders
    recorded ``options["out"]``, which was the run folder)."""
    options = dict(ckpt["options"])
    legacy_out = options.pop("out", None)
    known = {f.name for f in dataclasses.fields(TrainOptions)}
    run_dir = ckpt.get("run_dir") or legacy_out
    if not run_dir:
        raise CheckpointError("the checkpoint does not say which run folder it belongs to")
    return TrainOptions(**{k: v for k, v in options.items() if k in known}), Path(run_dir)


def fitness(metrics: Dict) -> float:
    return 0.1 * metrics["mAP50"] + 0.9 * metrics["mAP50-95"]


def _set_warmup_lr(optimizer, step: int, warmup_iters: int, base: float, hyp: Dict[str, float], sgd: bool):
    """Learning rate (and momentum) of every group for this step: ramped up from 0 (SGD biases: down from
    warmup_bias_lr) during warm-up, then the epoch's ``base``."""
    for j, group in enumerate(optimizer.param_groups):
        if step >= warmup_iters:
            group["lr"] = base
            continue
        start_lr = hyp["warmup_bias_lr"] if j == 2 and sgd else 0.0
        group["lr"] = float(np.interp(step, [0, warmup_iters], [start_lr, base]))
        if "momentum" in group:
            group["momentum"] = float(np.interp(step, [0, warmup_iters], [hyp["warmup_momentum"], hyp["momentum"]]))


@dataclass
class _Trainer:
    """What one epoch of training needs."""

    model: Yolov5
    loader: torch.utils.data.DataLoader
    optimizer: torch.optim.Optimizer
    ema: ModelEMA
    loss_fn: YoloLoss
    scaler: torch.amp.GradScaler
    device: torch.device
    hyp: Dict[str, float]
    opts: TrainOptions
    warmup_iters: int

    def epoch(self, epoch: int, base: float) -> torch.Tensor:
        """Trains one epoch at learning rate ``base``; returns the mean (box, obj, cls) loss."""
        self.model.train()
        nb = len(self.loader)
        mean_loss = torch.zeros(3)
        bar = tqdm(self.loader, total=nb, desc=f"epoch {epoch + 1}/{self.opts.epochs}", mininterval=2.0, ncols=110)
        for i, (images, targets) in enumerate(bar):
            _set_warmup_lr(self.optimizer, i + nb * epoch, self.warmup_iters, base, self.hyp,
                           self.opts.optimizer == "sgd")
            images = images.to(self.device, non_blocking=True).float() / 255
            with torch.autocast(self.device.type, enabled=self.scaler.is_enabled()):
                loss, items = self.loss_fn(raw_outputs(self.model, images), targets.to(self.device))
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=10.0)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
            self.ema.update(self.model)
            mean_loss = (mean_loss * i + items.cpu()) / (i + 1)
            bar.set_postfix_str(f"box {mean_loss[0]:.4f} obj {mean_loss[1]:.4f} cls {mean_loss[2]:.4f} "
                                f"labels {len(targets)}")
        bar.close()
        return mean_loss


def _append_results(results_csv: Path, metrics: Dict) -> None:
    with open(results_csv, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(metrics))
        if f.tell() == 0:
            writer.writeheader()
        writer.writerow(metrics)


def _run_model(opts: TrainOptions, ckpt: Optional[Dict], data) -> Yolov5:
    """The model to train: the resumed checkpoint's, or a new/fine-tuned one; checked against the data."""
    if ckpt is not None:
        model = Yolov5(ckpt["arch"], names=ckpt["names"])
        model.load_state_dict(ckpt["model"])
    else:
        model = _starting_model(opts, data.nc, data.names)
    if model.nc != data.nc:
        raise TrainError(f"the model has {model.nc} classes, the data {data.nc}")
    stride = max(model.strides)
    if opts.img % stride:
        raise TrainError(f"--img {opts.img} is not a multiple of the model stride {stride}")
    for layer in model.model[:opts.freeze]:
        layer.requires_grad_(False)
    return model


def _hyperparameters(opts: TrainOptions, data) -> Dict[str, float]:
    unknown = sorted(set(opts.hyp) - set(TRAIN_HYP) - set(DEFAULT_HYP))
    if unknown:
        raise TrainError(f"unknown --hyp keys {unknown}; known: {sorted(set(TRAIN_HYP) | set(DEFAULT_HYP))}")
    return {**TRAIN_HYP, **DEFAULT_HYP, **data.hyp, **opts.hyp}


def _make_trainer(opts: TrainOptions, model: Yolov5, train_set: YoloDataset, hyp: Dict[str, float],
                  device: torch.device) -> _Trainer:
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=opts.batch, shuffle=True, num_workers=opts.workers, collate_fn=YoloDataset.collate,
        generator=torch.Generator().manual_seed(opts.seed), pin_memory=device.type == "cuda")
    nb = len(loader)
    warmup_iters = max(round(hyp["warmup_epochs"] * nb), 1) if hyp["warmup_epochs"] > 0 else 0
    return _Trainer(model=model, loader=loader, optimizer=make_optimizer(model, opts.optimizer, hyp, opts.batch),
                    ema=ModelEMA(model, hyp["ema_decay"], hyp["ema_tau"]),
                    loss_fn=YoloLoss(model, opts.img, hyp["box"], hyp["obj"], hyp["cls"], hyp["anchor_t"]),
                    scaler=torch.amp.GradScaler("cuda", enabled=device.type == "cuda"), device=device, hyp=hyp,
                    opts=opts, warmup_iters=warmup_iters)


def train(opts: TrainOptions, resume: Optional[str] = None) -> Dict:
    """Train; returns a summary (paths, epochs, time, final and best metrics)."""
    ckpt = None
    if resume:
        ckpt = load_training_checkpoint(resume)
        opts, out = _resumed_options(ckpt)
        if ckpt["epoch"] + 1 >= opts.epochs:
            raise TrainError(f"{resume} finished its {opts.epochs} epochs already; nothing to resume")
    device = pick_device(opts.device)
    torch.manual_seed(opts.seed)
    data = load_data_config(opts.data)
    hyp = _hyperparameters(opts, data)
    if ckpt is None:
        out = new_run_dir(opts.project, opts.name, opts.exist_ok)
    (out / "weights").mkdir(parents=True, exist_ok=True)
    model = _run_model(opts, ckpt, data)
    model.to(device).train()
    stride = max(model.strides)

    train_set = YoloDataset(data.train, data.nc, opts.img, hyp, seed=opts.seed)
    val_set = load_val_set(data.val, data.nc)
    trainer = _make_trainer(opts, model, train_set, hyp, device)
    start_epoch, best = 0, -1.0
    if ckpt is not None:
        trainer.optimizer.load_state_dict(ckpt["optimizer"])
        trainer.ema.module.load_state_dict(ckpt["ema"])
        trainer.ema.updates = ckpt["ema_updates"]
        start_epoch, best = ckpt["epoch"] + 1, ckpt["best_fitness"]
        print(f"resuming {resume} at epoch {start_epoch + 1}/{opts.epochs}")
    print(f"training {len(train_set)} images ({data.train}), validating on {len(val_set.files)} ({data.val}); "
          f"{opts.epochs} epochs of {len(trainer.loader)} batches of {opts.batch} at {opts.img}px on {device}; "
          f"results in {out}")
    results_csv = out / "results.csv"
    if ckpt is None:
        results_csv.unlink(missing_ok=True)  # a new run in a reused (--exist-ok) folder starts its own results
    started = time.perf_counter()
    metrics: Dict = {}
    for epoch in range(start_epoch, opts.epochs):
        train_set.epoch = epoch
        base = lr_factor(epoch, opts.epochs, hyp["lrf"], opts.cos_lr) * hyp["lr0"]
        mean_loss = trainer.epoch(epoch, base)
        val = evaluate(lambda x: trainer.ema.module(x)[0], val_set, data.nc, opts.img, stride, device=str(device))
        metrics = val.metrics.as_dict()
        metrics.update(epoch=epoch + 1, box_loss=float(mean_loss[0]), obj_loss=float(mean_loss[1]),
                       cls_loss=float(mean_loss[2]), lr=base, seconds=round(time.perf_counter() - started, 1))
        print(f"epoch {epoch + 1}/{opts.epochs}: P {metrics['precision']:.3f} R {metrics['recall']:.3f} "
              f"mAP@0.5 {metrics['mAP50']:.4f} mAP@0.5:0.95 {metrics['mAP50-95']:.4f} "
              f"({metrics['seconds']:.0f} s so far)", flush=True)
        _append_results(results_csv, metrics)
        score = fitness(metrics)
        best = max(best, score)
        ckpt_dict = _checkpoint(model, trainer.ema, trainer.optimizer, epoch, best, opts, metrics, out)
        torch.save(ckpt_dict, out / "weights" / "last.pt")
        if score >= best:
            torch.save(ckpt_dict, out / "weights" / "best.pt")
    summary = {"out": str(out), "best": str(out / "weights" / "best.pt"), "last": str(out / "weights" / "last.pt"),
               "epochs": opts.epochs, "seconds": round(time.perf_counter() - started, 1), "final": metrics}
    if opts.export:
        summary["torchscript"] = export_checkpoint(summary["best"], str(out / "weights" / "best.torchscript"),
                                                   opts.img, method=opts.export_method).path
    return summary


def export_checkpoint(weights: str, out: str, img_size: int, half: bool = False, method: str = "trace"):
    """Export a training checkpoint's EMA model with the verified TorchScript exporter (dynamic size, rect)."""
    from jitvision.yolov5.export import export_torchscript

    model = model_from_checkpoint(load_training_checkpoint(weights))
    return export_torchscript(model, out, img_size=img_size, half=half,
                              source={"file": os.path.basename(weights), "sha256": sha256_of(weights)}, method=method)
