"""Optuna samplers and pruners built from the study file's `sampler:` and `pruner:` sections."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from hpo.search._spec import (
    CategoricalChoice,
    CategoricalParam,
    CmaEsSamplerSpec,
    FloatParam,
    GpSamplerSpec,
    GridSamplerSpec,
    HyperbandPrunerSpec,
    IntParam,
    MedianPrunerSpec,
    NsgaIISamplerSpec,
    ParamSpec,
    PercentilePrunerSpec,
    QmcSamplerSpec,
    RandomSamplerSpec,
    StudySpec,
    SuccessiveHalvingPrunerSpec,
    ThresholdPrunerSpec,
    TpeSamplerSpec,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from optuna.pruners import BasePruner
    from optuna.samplers import BaseSampler


def build_sampler(spec: StudySpec) -> BaseSampler:
    """Build the study's sampler. Options left unset in the file take Optuna's defaults."""
    from optuna import samplers

    sampler = spec.sampler
    # Every option that the file sets, under Optuna's name for it, except the type itself.
    options = sampler.model_dump(exclude={"type", "seed"}, exclude_none=True)

    if isinstance(sampler, TpeSamplerSpec):
        return samplers.TPESampler(seed=sampler.seed, **options)
    if isinstance(sampler, RandomSamplerSpec):
        return samplers.RandomSampler(seed=sampler.seed)
    if isinstance(sampler, CmaEsSamplerSpec):
        return samplers.CmaEsSampler(seed=sampler.seed, **options)
    if isinstance(sampler, GpSamplerSpec):
        return samplers.GPSampler(seed=sampler.seed, **options)
    if isinstance(sampler, NsgaIISamplerSpec):
        return samplers.NSGAIISampler(seed=sampler.seed, **options)
    if isinstance(sampler, GridSamplerSpec):
        from hpo.search._grid import AskTellGridSampler

        return AskTellGridSampler(grid_search_space(spec.space), seed=sampler.seed)
    if isinstance(sampler, QmcSamplerSpec):
        return samplers.QMCSampler(seed=sampler.seed, **options)
    raise TypeError(f"no sampler for {sampler!r}")


def build_pruner(spec: StudySpec) -> BasePruner:
    """Build the study's pruner, which is Optuna's NopPruner for `type: none`."""
    from optuna import pruners

    pruner = spec.pruner
    options = pruner.model_dump(exclude={"type"})

    if isinstance(pruner, MedianPrunerSpec):
        return pruners.MedianPruner(**options)
    if isinstance(pruner, PercentilePrunerSpec):
        return pruners.PercentilePruner(**options)
    if isinstance(pruner, SuccessiveHalvingPrunerSpec):
        return pruners.SuccessiveHalvingPruner(**options)
    if isinstance(pruner, HyperbandPrunerSpec):
        return pruners.HyperbandPruner(**options)
    if isinstance(pruner, ThresholdPrunerSpec):
        return pruners.ThresholdPruner(**options)
    return pruners.NopPruner()


def grid_search_space(space: Mapping[str, ParamSpec]) -> dict[str, list[CategoricalChoice]]:
    """List every value of each parameter for GridSampler.

    Raises ValueError for a float parameter without a step; study file validation rejects
    that combination first.
    """
    grid: dict[str, list[CategoricalChoice]] = {}
    for name, param in space.items():
        if isinstance(param, CategoricalParam):
            grid[name] = list(param.choices)
        elif isinstance(param, IntParam):
            grid[name] = list(range(param.low, param.high + 1, param.step))
        elif isinstance(param, FloatParam):
            if param.step is None:
                raise ValueError(f"float parameter {name!r} needs a step for a grid")
            grid[name] = list(_float_steps(param.low, param.high, param.step))
    return grid


def _float_steps(low: float, high: float, step: float) -> Sequence[float]:
    # Decimal arithmetic keeps 0.1 + 0.2 from becoming 0.30000000000000004.
    first, last, size = Decimal(str(low)), Decimal(str(high)), Decimal(str(step))
    count = int((last - first) // size) + 1
    return [float(first + index * size) for index in range(count)]
