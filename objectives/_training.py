"""Training, pruning and scoring for the built-in `cnn` objective.

This module imports torch, so `hpo.objectives` imports it only when a trial runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import optuna
import torch
import torch.nn.functional as F
from torch import nn

from hpo.errors import ObjectiveError

from ._augment import augment
from ._datasets import load_splits
from ._model import build_model
from ._pruning import (
    count_nonzero_parameters,
    make_pruning_permanent,
    nonzero_parameter_bytes,
    prune_globally,
    sparsity,
)

if TYPE_CHECKING:
    from ._config import CnnConfig
    from ._trial import TrialLike

_logger = logging.getLogger(__name__)

_EVAL_BATCH_SIZE = 512
_INFERENCE_WARMUP_PASSES = 1
_INFERENCE_TIMED_PASSES = 3
_INFERENCE_MAX_BATCHES = 10
# The step schedule multiplies the learning rate by this factor after each third of the epochs.
_STEP_SCHEDULE_GAMMA = 0.1
# Fine-tuning after pruning runs at this fraction of the base learning rate, without a schedule,
# because a cosine schedule has already brought the rate close to zero.
_FINETUNE_LR_FACTOR = 0.1


@dataclasses.dataclass(frozen=True)
class DeviceSplits:
    """A dataset's train, validation and test splits as tensors on the training device."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int


@dataclasses.dataclass(frozen=True)
class _Precision:
    """Mixed precision settings: autocast and gradient scaling on CUDA only."""

    autocast_dtype: torch.dtype | None
    scaler: torch.amp.GradScaler


# A Ray worker process runs trial after trial, so the loaded splits stay here between trials.
_DATA_CACHE: dict[tuple[object, ...], DeviceSplits] = {}
_DATA_CACHE_LOCK = threading.Lock()


def run_trial(trial: TrialLike, config: CnnConfig) -> float | tuple[float, ...]:
    """Train, prune and score one trial, storing the model's metrics as user attributes."""
    device = resolve_device(config.device)
    trial.set_user_attr("device", str(device))

    model, data, precision, epochs_run = train_and_prune(config, device, trial)

    val_accuracy = evaluate(model, data.x_val, data.y_val, precision)
    nonzero_params = count_nonzero_parameters(model)
    trial.set_user_attr("sparsity", sparsity(model))
    trial.set_user_attr("nonzero_params", nonzero_params)
    trial.set_user_attr("model_size_bytes", nonzero_parameter_bytes(model))
    trial.set_user_attr("inference_ms", measure_inference_ms(model, data.x_val, precision))
    trial.set_user_attr("epochs_run", epochs_run)

    metrics = {"val_accuracy": val_accuracy, "nonzero_params": float(nonzero_params)}
    if len(config.objectives) == 1:
        return metrics[config.objectives[0]]
    return tuple(metrics[name] for name in config.objectives)


def score_on_test_split(config: CnnConfig) -> float:
    """Train and prune as a trial would, then return the accuracy on the test split."""
    device = resolve_device(config.device)
    model, data, precision, _ = train_and_prune(config, device, None)
    return evaluate(model, data.x_test, data.y_test, precision)


def resolve_device(name: str) -> torch.device:
    """Turn the `device` argument into a torch device; `auto` picks CUDA when it is available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ObjectiveError(
            f"objective cnn: device {name} requested, but this worker sees no CUDA device: "
            "set device: auto or cpu, or give the trials GPUs"
        )
    return device


def train_and_prune(
    config: CnnConfig, device: torch.device, trial: TrialLike | None
) -> tuple[nn.Module, DeviceSplits, _Precision, int]:
    """Train, report to `trial` after each epoch, then prune and fine-tune.

    Returns the pruned model, the data, the precision settings and the number of epochs run,
    fine-tuning included. Raises `optuna.TrialPruned` when `trial.should_prune()` returns True.
    """
    _seed_everything(config.seed, device, config.num_threads)
    data = load_device_splits(config, device)
    precision = _precision_for(device)
    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)

    model = build_model(
        in_channels=data.x_train.shape[1],
        image_size=(data.x_train.shape[2], data.x_train.shape[3]),
        num_classes=data.num_classes,
        width=config.width,
        depth=config.depth,
        dropout=config.dropout,
    ).to(device)
    optimizer = _make_optimizer(model, config, config.lr)
    scheduler = _make_scheduler(optimizer, config)

    for epoch in range(config.epochs):
        train_epoch(model, optimizer, data, config, generator, precision)
        scheduler.step()
        if trial is None:
            continue

        accuracy = evaluate(model, data.x_val, data.y_val, precision)
        trial.report(accuracy, epoch)
        if trial.should_prune():
            trial.set_user_attr("epochs_run", epoch + 1)
            raise optuna.TrialPruned(
                f"Stopped at epoch {epoch} with validation accuracy {accuracy:.4f}."
            )

    if config.prune_amount == 0:
        return model, data, precision, config.epochs

    prune_globally(model, config.prune_amount)
    finetune_optimizer = _make_optimizer(model, config, config.lr * _FINETUNE_LR_FACTOR)
    for _ in range(config.finetune_epochs):
        train_epoch(model, finetune_optimizer, data, config, generator, precision)
    make_pruning_permanent(model)
    return model, data, precision, config.epochs + config.finetune_epochs


def load_device_splits(config: CnnConfig, device: torch.device) -> DeviceSplits:
    """Return the dataset's splits on `device`, loading them once per process."""
    key = (
        config.dataset,
        _absolute(config.data_dir),
        _absolute(config.path),
        config.seed,
        config.val_fraction,
        config.test_fraction,
        str(device),
    )
    with _DATA_CACHE_LOCK:
        cached = _DATA_CACHE.get(key)
        if cached is not None:
            _logger.debug("Reusing the loaded %s dataset on %s.", config.dataset, device)
            return cached

        start = time.perf_counter()
        splits = load_splits(config)
        data = DeviceSplits(
            x_train=torch.from_numpy(splits.x_train).to(device),
            y_train=torch.from_numpy(splits.y_train).to(device),
            x_val=torch.from_numpy(splits.x_val).to(device),
            y_val=torch.from_numpy(splits.y_val).to(device),
            x_test=torch.from_numpy(splits.x_test).to(device),
            y_test=torch.from_numpy(splits.y_test).to(device),
            num_classes=splits.num_classes,
        )
        _DATA_CACHE[key] = data
        _logger.info(
            "Loaded the %s dataset on %s in %.2f s: %d train, %d validation, %d test images "
            "of %dx%d, %d classes.",
            config.dataset,
            device,
            time.perf_counter() - start,
            len(splits.y_train),
            len(splits.y_val),
            len(splits.y_test),
            splits.x_train.shape[2],
            splits.x_train.shape[3],
            splits.num_classes,
        )
        return data


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: DeviceSplits,
    config: CnnConfig,
    generator: torch.Generator,
    precision: _Precision,
) -> None:
    """Run one pass over the shuffled, augmented training split."""
    model.train()
    n = data.x_train.shape[0]
    order = torch.randperm(n, generator=generator, device=data.x_train.device)
    for start in range(0, n, config.batch_size):
        batch = order[start : start + config.batch_size]
        x = augment(
            data.x_train[batch],
            rotation=config.rotation,
            translation=config.translation,
            scale=config.scale,
            noise=config.noise,
            erasing=config.erasing,
            generator=generator,
        )

        with _autocast(precision, x.device):
            loss = F.cross_entropy(model(x), data.y_train[batch])
        optimizer.zero_grad(set_to_none=True)
        precision.scaler.scale(loss).backward()  # type: ignore[no-untyped-call]
        precision.scaler.step(optimizer)
        precision.scaler.update()


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: _Precision) -> float:
    """Return the model's accuracy on `x`, `y`, without augmentation."""
    model.eval()
    correct = 0
    with torch.inference_mode(), _autocast(precision, x.device):
        for start in range(0, x.shape[0], _EVAL_BATCH_SIZE):
            logits = model(x[start : start + _EVAL_BATCH_SIZE])
            correct += int((logits.argmax(dim=1) == y[start : start + _EVAL_BATCH_SIZE]).sum())
    return correct / x.shape[0]


def measure_inference_ms(model: nn.Module, x: torch.Tensor, precision: _Precision) -> float:
    """Return the mean milliseconds per validation batch over a few passes after a warm-up."""
    model.eval()
    batches = list(torch.split(x, _EVAL_BATCH_SIZE))[:_INFERENCE_MAX_BATCHES]

    elapsed = 0.0
    with torch.inference_mode(), _autocast(precision, x.device):
        for timed_pass in range(_INFERENCE_WARMUP_PASSES + _INFERENCE_TIMED_PASSES):
            _synchronize(x.device)
            start = time.perf_counter()
            for batch in batches:
                model(batch)
            _synchronize(x.device)
            if timed_pass >= _INFERENCE_WARMUP_PASSES:
                elapsed += time.perf_counter() - start

    return 1000.0 * elapsed / (_INFERENCE_TIMED_PASSES * len(batches))


def _seed_everything(seed: int, device: torch.device, num_threads: int) -> None:
    torch.set_num_threads(num_threads)
    torch.manual_seed(seed)
    if device.type == "cuda":
        # NOTE: these make cuDNN's convolutions repeatable, but the score is promised to repeat
        # only on the CPU: some CUDA kernels stay nondeterministic.
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def _precision_for(device: torch.device) -> _Precision:
    if device.type != "cuda":
        return _Precision(autocast_dtype=None, scaler=torch.amp.GradScaler("cuda", enabled=False))

    # NOTE: no test runs this CUDA branch, because the test machines have no GPU.
    # bfloat16 keeps float32's exponent range, so it needs no gradient scaling.
    if torch.cuda.is_bf16_supported():
        return _Precision(
            autocast_dtype=torch.bfloat16, scaler=torch.amp.GradScaler("cuda", enabled=False)
        )
    return _Precision(autocast_dtype=torch.float16, scaler=torch.amp.GradScaler("cuda"))


def _autocast(
    precision: _Precision, device: torch.device
) -> contextlib.AbstractContextManager[object]:
    if precision.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=precision.autocast_dtype)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _make_optimizer(model: nn.Module, config: CnnConfig, lr: float) -> torch.optim.Optimizer:
    parameters = model.parameters()
    if config.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(parameters, lr=lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        parameters, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def _make_scheduler(
    optimizer: torch.optim.Optimizer, config: CnnConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.lr_schedule == "step":
        step_size = max(1, config.epochs // 3)
        return torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=step_size, gamma=_STEP_SCHEDULE_GAMMA
        )
    return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


def _absolute(path: str | None) -> str | None:
    return None if path is None else str(Path(path).resolve())
