"""Search space from the study file to Optuna: suggestions for a trial, and distributions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from hpo.search._spec import CategoricalParam, FloatParam, IntParam, ParamSpec, same_choice

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution


def is_active(param: ParamSpec, values: Mapping[str, object]) -> bool:
    """Check whether every condition in `param.when` holds for the values suggested so far."""
    if not param.when:
        return True
    return all(
        name in values and same_choice(values[name], expected)
        for name, expected in param.when.items()
    )


def suggest_params(trial: optuna.Trial, space: Mapping[str, ParamSpec]) -> dict[str, object]:
    """Suggest each parameter in file order, skipping those whose `when` condition fails."""
    values: dict[str, object] = {}
    for name, param in space.items():
        if not is_active(param, values):
            continue

        if isinstance(param, FloatParam):
            values[name] = trial.suggest_float(
                name, param.low, param.high, step=param.step, log=param.log
            )
        elif isinstance(param, IntParam):
            values[name] = trial.suggest_int(
                name, param.low, param.high, step=param.step, log=param.log
            )
        else:
            values[name] = trial.suggest_categorical(name, param.choices)
    return values


def space_distributions(space: Mapping[str, ParamSpec]) -> dict[str, BaseDistribution]:
    """Build the Optuna distribution of every parameter, conditional ones included."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    distributions: dict[str, BaseDistribution] = {}
    for name, param in space.items():
        if isinstance(param, FloatParam):
            distributions[name] = FloatDistribution(
                param.low, param.high, log=param.log, step=param.step
            )
        elif isinstance(param, IntParam):
            distributions[name] = IntDistribution(
                param.low, param.high, log=param.log, step=param.step
            )
        elif isinstance(param, CategoricalParam):
            distributions[name] = CategoricalDistribution(param.choices)
    return distributions
