"""Training: a fixed schedule per fold on cached mel power, realistic mixtures and recording conditions made per
batch (`soundtag.training.augment`), multi-label targets, a checkpoint every epoch.

Runs on CPU (bf16 autocast, channels_last), on a CUDA GPU (AMP), and under `torchrun` (DistributedDataParallel,
each process takes a shard of every epoch). An interrupted run resumes from its last epoch to the same result.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from soundtag.features.logmel import LogMel
from soundtag.models.cnn import ModelBundle, SoundCNN, clip_inference, predict_logits, save_model
from soundtag.training.augment import Augmenter
from soundtag.training.config import ConfigError, RunConfig
from soundtag.training.dataset import Dataset, load_dataset
from soundtag.training.feature_cache import build_features

LOG_FIELDS = ("epoch", "lr", "train_loss", "val_loss", "val_acc", "seconds")
PREFETCH = 4  # batches made ahead on the CPU while a GPU trains


def lr_at(step: int, total: int, warmup: int, peak: float) -> float:
    """Linear warm-up to `peak`, then cosine decay to zero."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return 0.5 * peak * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def pick_device() -> tuple[torch.device, torch.dtype | None]:
    """The device and its autocast dtype: bf16 on CPU (measured 3x faster here) and on bf16-capable GPUs."""
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", 0))
        if local >= torch.cuda.device_count():
            raise ConfigError(f"process {local} of this machine has no GPU of its own ({torch.cuda.device_count()} "
                              "visible): start as many processes as GPUs (torchrun --nproc_per_node)")
        torch.cuda.set_device(local)
        return torch.device("cuda", local), torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.device("cpu"), torch.bfloat16


def _distributed() -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def loss_fn(logits: torch.Tensor, target: torch.Tensor, output: str) -> torch.Tensor:
    """Binary cross-entropy per class for sigmoid scores; for softmax, cross-entropy with the targets made a
    distribution (examples without any target, background only, are left out)."""
    if output == "sigmoid":
        return F.binary_cross_entropy_with_logits(logits, target)
    mass = target.sum(1)
    keep = mass > 0
    return F.cross_entropy(logits[keep], target[keep] / mass[keep, None])


def train_fold(cfg: RunConfig, power: torch.Tensor, labels: torch.Tensor, train_idx: np.ndarray,
               val_idx: np.ndarray, out: Path, name: str, rooms: torch.Tensor | None = None) -> SoundCNN:
    """Train one model on the clips `train_idx` of `power` (mel power `(clips, n_mels, frames)`; `rooms`, their
    reverberant copies), checkpointing to `out/checkpoint.pt` after every epoch; `val_idx` clips are scored clean
    after each epoch."""
    t = cfg.train
    device, amp_dtype = pick_device()
    rank, world = _distributed()
    torch.manual_seed(t.seed)
    model = SoundCNN(cfg.model).to(device, memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]  # BN and biases
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=t.lr)
    scaler = torch.amp.GradScaler(enabled=t.amp and amp_dtype == torch.float16)
    ddp = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    frontend = LogMel(cfg.frontend)
    augmenter = Augmenter(cfg.augment, frontend, power, labels, train_idx, cfg.model.n_classes, cfg.audio.num_samples,
                          rooms)
    val_mels = frontend.compress(power[val_idx])
    start, log = 0, []
    ckpt = out / "checkpoint.pt"
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, log = state["epoch"], state["log"]

    per_rank = max(1, t.batch_size // world)
    steps_per_epoch = max(1, len(train_idx) // (per_rank * world))
    total, warmup = t.epochs * steps_per_epoch, t.warmup_epochs * steps_per_epoch
    bar = tqdm(range(start, t.epochs), initial=start, total=t.epochs, desc=name, unit="epoch", disable=rank != 0)
    for epoch in bar:
        began = time.perf_counter()
        rng = np.random.default_rng([t.seed, epoch])
        torch.manual_seed(t.seed * 100_003 + epoch)  # dropout, so a resumed epoch repeats exactly
        order = rng.permutation(train_idx)[rank::world]
        losses = []
        ddp.train()
        chunks = (order[step * per_rank:(step + 1) * per_rank] for step in range(steps_per_epoch))
        ahead = PREFETCH if device.type == "cuda" else 0  # on CPU the batch and the step share the same cores
        for step, (x, y) in enumerate(prefetched(partial(augmenter, rng=rng), chunks, ahead)):
            lr = lr_at(epoch * steps_per_epoch + step, total, warmup, t.lr)
            for group in opt.param_groups:
                group["lr"] = lr
            with torch.autocast(device.type, amp_dtype, enabled=t.amp):
                logits = ddp(x.to(device))
            loss = loss_fn(logits.float(), y.to(device), cfg.model.output)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            losses.append(loss.item())
        row = {"epoch": epoch + 1, "lr": lr, "train_loss": float(np.mean(losses)), "val_loss": "", "val_acc": ""}
        if len(val_idx):
            val_logits = predict_logits(model, val_mels)
            val_target = F.one_hot(labels[val_idx], cfg.model.n_classes).float()
            row["val_loss"] = loss_fn(val_logits, val_target, cfg.model.output).item()
            row["val_acc"] = (val_logits.argmax(1) == labels[val_idx]).float().mean().item()
        row["seconds"] = time.perf_counter() - began
        log.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", lr=f"{lr:.2e}",
                        **({"val_acc": f"{row['val_acc']:.3f}"} if len(val_idx) else {}))
        if rank == 0:
            _save_checkpoint(ckpt, model, opt, epoch + 1, log)
            _write_log(out / "log.csv", log)
        if world > 1:
            dist.barrier()
    return model


def prefetched(make: Callable, items: Iterable, ahead: int) -> Iterator:
    """`make(item)` for each item in order; with `ahead` > 0 computed up to that many items ahead in one worker
    thread, so a GPU does not wait for the CPU to build its next batch. One worker runs them in order, so draws from
    a shared random generator come out the same as without prefetching."""
    if ahead <= 0:
        yield from map(make, items)
        return
    with ThreadPoolExecutor(1) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(make, item))
            if len(pending) > ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _save_checkpoint(path: Path, model: SoundCNN, opt: torch.optim.Optimizer, epoch: int, log: list) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch, "log": log}, tmp)
    tmp.replace(path)  # atomic: a kill mid-write leaves the previous checkpoint intact


def _write_log(path: Path, log: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, LOG_FIELDS)
        writer.writeheader()
        writer.writerows(log)


def run(cfg: RunConfig, data: str | Path, out: str | Path, folds: list[int] | None = None,
        full: bool = False, resume: bool = False) -> Path:
    """Cross-validate over `folds` (default: all), or with `full` train one model on every clip.

    Writes `out/config.json`, `out/run.json` and, per fold, `fold{k}/` (or `full/`) holding the model,
    its log and, while it trains, a checkpoint. With `resume`, finished folds are skipped and an unfinished
    one continues from its last checkpoint.
    """
    out = Path(out)
    if (out / "config.json").exists() and not resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it, or choose another --out")
    started = run_plan(out) if resume else None
    if started is not None:  # a resumed run does what was started, not what this call would default to
        asked = {"folds": folds, "full": full}
        if (folds is not None or full) and asked != started:
            raise ConfigError(f"{out} was started with {_plan_text(started)}; --resume continues that, so drop "
                              f"{_plan_text(asked)} or choose another --out")
        folds, full = started["folds"], started["full"]
    dataset = load_dataset(data)
    cfg = replace(cfg, model=replace(cfg.model, n_classes=len(dataset.classes)))
    _check_folds(cfg, dataset, folds, full)
    rank, _ = _distributed()
    if rank == 0:
        _write_run_files(out, cfg, data, {"folds": folds, "full": full})
    cache = Path(data) if Path(data).is_dir() else Path(data).parent
    power = torch.from_numpy(build_features(dataset, cfg.audio, cfg.frontend, cache / ".soundtag-cache"))
    rooms = None
    if cfg.augment.reverb > 0 and cfg.augment.rooms > 0:
        rooms = torch.from_numpy(build_features(dataset, cfg.audio, cfg.frontend, cache / ".soundtag-cache",
                                                rooms=cfg.augment.rooms))
    labels = torch.from_numpy(dataset.labels)
    everything = np.arange(len(dataset))
    plan = [("full", everything, np.array([], dtype=int))] if full else [
        (f"fold{k}", *dataset.split(k)) for k in (folds or sorted(set(dataset.folds.tolist())))]
    for name, train_idx, _test_idx in plan:
        fold_dir = out / name
        if (fold_dir / "model.safetensors").exists():
            continue
        fold_dir.mkdir(parents=True, exist_ok=True)
        val_idx = np.array([], dtype=int)
        if cfg.train.val_fold is not None:
            val_idx = np.intersect1d(train_idx, np.flatnonzero(dataset.folds == cfg.train.val_fold))
            train_idx = np.setdiff1d(train_idx, val_idx)
        model = train_fold(cfg, power, labels, train_idx, val_idx, fold_dir, name, rooms)
        if rank == 0:
            inference = clip_inference(cfg.audio, cfg.model.output)
            save_model(fold_dir, ModelBundle(model.cpu(), dataset.classes, cfg.audio, cfg.frontend, inference))
            (fold_dir / "checkpoint.pt").unlink(missing_ok=True)
    return out


def _check_folds(cfg: RunConfig, dataset: Dataset, folds: list[int] | None, full: bool) -> None:
    known = sorted(set(dataset.folds.tolist()))
    for k in [*(folds or []), *([cfg.train.val_fold] if cfg.train.val_fold is not None else [])]:
        if k not in known:
            raise ConfigError(f"fold {k} does not exist in this dataset; its folds are {known}")
    for k in [] if full else (folds or known):
        if not np.any(dataset.folds != k):
            raise ConfigError(f"holding out fold {k} leaves no clips to train on; the data needs two folds or more")
    if not full and cfg.train.val_fold is not None and cfg.train.val_fold in (folds or known):
        raise ConfigError(f"train.val_fold={cfg.train.val_fold} is also a test fold; choose folds that exclude it")


def run_plan(out: str | Path) -> dict | None:
    """What the run in `out` was asked to do, `{"folds": [k, ...] or None for all, "full": bool}`; None for runs
    written before soundtag 0.5 recorded it."""
    path = Path(out) / "run.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    return {"folds": info["folds"], "full": info["full"]} if "full" in info else None


def _plan_text(plan: dict) -> str:
    return "--full" if plan["full"] else f"--folds {','.join(map(str, plan['folds']))}" if plan["folds"] else \
        "all folds"


def _write_run_files(out: Path, cfg: RunConfig, data: str | Path, plan: dict) -> None:
    """The config actually used, what the run was asked to do, and where it ran; a resumed run must use the same
    config."""
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "config.json"
    text = json.dumps(cfg.to_dict(), indent=2) + "\n"
    if config_path.exists() and config_path.read_text() != text:
        raise ConfigError(f"{config_path}: this run was started with a different config; use a new --out "
                         "or the same settings to resume")
    config_path.write_text(text)
    info_path = out / "run.json"
    if not info_path.exists():
        info = {"data": str(data), **plan, "git_commit": _git_commit(), "machine": machine_description(),
                "torch": torch.__version__, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        info_path.write_text(json.dumps(info, indent=2) + "\n")


def _git_commit() -> str | None:
    """The commit the code came from, with "-dirty" when tracked files differ from it (the run's code is then not
    exactly that commit's). Tags are excluded, so a tagged release still records the full hash."""
    try:
        proc = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=40", "--exclude=*"],
                              capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent)
        return proc.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_description() -> str:
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores{gpu}".replace("  ", " ")
