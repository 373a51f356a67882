"""Global magnitude pruning of convolution and linear weights, and the size of the result."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune


def prunable_weights(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """Return the weight of every Conv2d and Linear layer, in the form that `prune` expects."""
    return [
        (module, "weight")
        for module in model.modules()
        if isinstance(module, nn.Conv2d | nn.Linear)
    ]


def prune_globally(model: nn.Module, amount: float) -> None:
    """Mask the `amount` fraction of all prunable weights with the smallest magnitudes.

    The masks stay in place, so fine-tuning keeps pruned weights at zero, until
    `make_pruning_permanent` folds them into the weights.
    """
    prune.global_unstructured(
        prunable_weights(model), pruning_method=prune.L1Unstructured, amount=amount
    )


def make_pruning_permanent(model: nn.Module) -> None:
    """Remove the pruning masks and hooks, leaving zeros in the weights."""
    for module, name in prunable_weights(model):
        if prune.is_pruned(module):
            prune.remove(module, name)  # type: ignore[no-untyped-call]


def sparsity(model: nn.Module) -> float:
    """Return the fraction of prunable weights that are exactly zero."""
    total = 0
    zeros = 0
    for module, name in prunable_weights(model):
        weight: torch.Tensor = getattr(module, name)
        total += weight.numel()
        zeros += int((weight == 0).sum())
    return zeros / total if total else 0.0


def count_nonzero_parameters(model: nn.Module) -> int:
    """Return the number of non-zero values over all parameters, biases and norms included."""
    return sum(int(torch.count_nonzero(parameter)) for parameter in model.parameters())


def nonzero_parameter_bytes(model: nn.Module) -> int:
    """Return the bytes that the non-zero parameter values take.

    This is the size of the values that a sparse format would store; the indices that such a
    format also stores are not counted.
    """
    return sum(
        int(torch.count_nonzero(parameter)) * parameter.element_size()
        for parameter in model.parameters()
    )
