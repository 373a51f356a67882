"""Batched data augmentation on the training device, for training batches only."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Random erasing draws the rectangle's area and aspect ratio from the default ranges of
# torchvision.transforms.RandomErasing (scale and ratio in the torchvision 0.28 docs).
_ERASING_AREA = (0.02, 0.33)
_ERASING_LOG_RATIO = (math.log(0.3), math.log(3.3))


def augment(
    x: torch.Tensor,
    *,
    rotation: float,
    translation: float,
    scale: float,
    noise: float,
    erasing: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Return a randomly transformed copy of an (N, C, H, W) batch; a strength of 0 skips its step.

    `rotation` is the maximum angle in degrees and `translation` the maximum shift as a fraction
    of the image size. `scale` is the maximum zoom as a fraction, so 0.1 zooms between 0.9 and
    1.1. `noise` is the standard deviation of additive gaussian noise, and `erasing` the
    probability that a sample gets a random rectangle set to 0.
    """
    if rotation > 0 or translation > 0 or scale > 0:
        x = random_affine(
            x, rotation=rotation, translation=translation, scale=scale, generator=generator
        )
    if noise > 0:
        x = x + noise * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if erasing > 0:
        x = random_erasing(x, probability=erasing, generator=generator)
    return x


def random_affine(
    x: torch.Tensor,
    *,
    rotation: float,
    translation: float,
    scale: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Rotate, shift and zoom every sample by its own random amounts in one resampling."""
    n = x.shape[0]
    angle = _uniform(n, -rotation, rotation, x, generator) * (math.pi / 180.0)
    zoom = _uniform(n, 1.0 - scale, 1.0 + scale, x, generator)
    # affine_grid works in coordinates from -1 to 1, so a shift by a fraction of the image size
    # is twice that fraction.
    shift_x = _uniform(n, -translation, translation, x, generator) * 2.0
    shift_y = _uniform(n, -translation, translation, x, generator) * 2.0

    # theta maps output coordinates to input coordinates, so it contains the inverse zoom.
    cos = torch.cos(angle) / zoom
    sin = torch.sin(angle) / zoom
    theta = torch.stack(
        [torch.stack([cos, -sin, shift_x], dim=1), torch.stack([sin, cos, shift_y], dim=1)],
        dim=1,
    )

    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_erasing(
    x: torch.Tensor, *, probability: float, generator: torch.Generator
) -> torch.Tensor:
    """Set one random rectangle to 0 in each sample, with the given probability per sample."""
    n, _, height, width = x.shape
    area = _uniform(n, *_ERASING_AREA, x, generator) * (height * width)
    ratio = torch.exp(_uniform(n, *_ERASING_LOG_RATIO, x, generator))
    rect_h = torch.sqrt(area * ratio).round().clamp(1, height)
    rect_w = torch.sqrt(area / ratio).round().clamp(1, width)
    top = (_uniform(n, 0.0, 1.0, x, generator) * (height - rect_h + 1)).floor()
    left = (_uniform(n, 0.0, 1.0, x, generator) * (width - rect_w + 1)).floor()
    erase = _uniform(n, 0.0, 1.0, x, generator) < probability

    rows = torch.arange(height, device=x.device, dtype=x.dtype)
    cols = torch.arange(width, device=x.device, dtype=x.dtype)
    in_rows = (rows >= top[:, None]) & (rows < (top + rect_h)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + rect_w)[:, None])
    mask = in_rows[:, :, None] & in_cols[:, None, :] & erase[:, None, None]
    return x.masked_fill(mask[:, None, :, :], 0.0)


def _uniform(
    n: int, low: float, high: float, like: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    values = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
    return low + (high - low) * values
