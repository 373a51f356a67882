"""Samplers and pruners built from the study file."""

from __future__ import annotations

import textwrap

import optuna
import pytest
from optuna.exceptions import ExperimentalWarning

from hpo.search._loader import parse_spec
from hpo.search._samplers import build_pruner, build_sampler, grid_search_space
from hpo.search._space import suggest_params
from hpo.search._spec import StudySpec

BASE = """\
study:
  name: demo
objective:
  name: cnn
budget:
  n_trials: 10
space:
  x: {type: float, low: 0, high: 1, step: 0.25}
  n: {type: int, low: 2, high: 8, step: 3}
  opt: {type: categorical, choices: [adam, sgd]}
"""


def spec_with(extra: str, base: str = BASE) -> StudySpec:
    return parse_spec(textwrap.dedent(base) + textwrap.dedent(extra))


def test_default_sampler_is_tpe() -> None:
    sampler = build_sampler(spec_with(""))

    assert type(sampler) is optuna.samplers.TPESampler


def test_tpe_options() -> None:
    sampler = build_sampler(
        spec_with(
            """\
            sampler:
              type: tpe
              seed: 3
              n_startup_trials: 4
              n_ei_candidates: 12
              multivariate: true
              constant_liar: false
            """
        )
    )

    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._n_startup_trials == 4
    assert sampler._n_ei_candidates == 12
    assert sampler._multivariate is True
    assert sampler._constant_liar is False


def test_tpe_group_is_experimental() -> None:
    spec = spec_with("sampler:\n  multivariate: true\n  group: true\n")

    with pytest.warns(ExperimentalWarning, match="group"):
        sampler = build_sampler(spec)

    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._group is True


def test_random_sampler() -> None:
    sampler = build_sampler(spec_with("sampler:\n  type: random\n  seed: 1\n"))

    assert type(sampler) is optuna.samplers.RandomSampler


def test_seed_makes_samples_repeat() -> None:
    spec = spec_with("sampler:\n  type: random\n  seed: 7\n")
    first = optuna.create_study(sampler=build_sampler(spec)).ask().suggest_float("v", 0, 1)
    second = optuna.create_study(sampler=build_sampler(spec)).ask().suggest_float("v", 0, 1)

    assert first == second


def test_cmaes_options() -> None:
    spec = spec_with(
        """\
        sampler:
          type: cmaes
          seed: 0
          n_startup_trials: 3
          popsize: 8
          use_separable_cma: true
        """
    )

    with pytest.warns(ExperimentalWarning, match="use_separable_cma"):
        sampler = build_sampler(spec)

    assert isinstance(sampler, optuna.samplers.CmaEsSampler)
    assert sampler._n_startup_trials == 3
    assert sampler._popsize == 8
    assert sampler._use_separable_cma is True


def test_cmaes_deprecated_options_rejected() -> None:
    with pytest.raises(Exception, match=r"sampler.sigma0: unknown key"):
        spec_with("sampler:\n  type: cmaes\n  sigma0: 0.3\n")


def test_gp_options() -> None:
    spec = spec_with(
        "sampler:\n  type: gp\n  n_startup_trials: 4\n  deterministic_objective: true\n"
    )

    with pytest.warns(ExperimentalWarning, match="deterministic_objective"):
        sampler = build_sampler(spec)

    assert isinstance(sampler, optuna.samplers.GPSampler)
    assert sampler._n_startup_trials == 4
    assert sampler._deterministic is True


def test_nsgaii_options() -> None:
    sampler = build_sampler(
        spec_with(
            """\
            sampler:
              type: nsgaii
              population_size: 20
              mutation_prob: 0.1
              crossover_prob: 0.8
              swapping_prob: 0.4
            """
        )
    )

    assert isinstance(sampler, optuna.samplers.NSGAIISampler)
    assert sampler._population_size == 20
    assert sampler._child_generation_strategy._mutation_prob == 0.1
    assert sampler._child_generation_strategy._crossover_prob == 0.8
    assert sampler._child_generation_strategy._swapping_prob == 0.4


def test_nsgaii_probability_bounds() -> None:
    with pytest.raises(Exception, match=r"sampler.mutation_prob: must be <= 1, but got 2"):
        spec_with("sampler:\n  type: nsgaii\n  mutation_prob: 2\n")


def test_qmc_options() -> None:
    spec = spec_with("sampler:\n  type: qmc\n  qmc_type: halton\n  scramble: true\n  seed: 0\n")

    with pytest.warns(ExperimentalWarning, match="QMCSampler"):
        sampler = build_sampler(spec)

    assert isinstance(sampler, optuna.samplers.QMCSampler)
    assert sampler._qmc_type == "halton"
    assert sampler._scramble is True


def test_grid_sampler_space() -> None:
    sampler = build_sampler(spec_with("sampler:\n  type: grid\n  seed: 0\n"))

    assert isinstance(sampler, optuna.samplers.GridSampler)
    assert sampler._search_space == {
        "n": [2, 5, 8],
        "opt": ["adam", "sgd"],
        "x": [0.0, 0.25, 0.5, 0.75, 1.0],
    }


def test_grid_search_space_keeps_decimal_steps() -> None:
    space = spec_with(
        "",
        BASE
        + "  y: {type: float, low: 0.1, high: 0.4, step: 0.1}\n"
        + "  z: {type: categorical, choices: [1, true, null]}\n",
    ).space

    grid = grid_search_space(space)

    assert grid["y"] == [0.1, 0.2, 0.3, 0.4]
    assert grid["z"] == [1, True, None]


def test_grid_runs_every_combination() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = spec_with("sampler:\n  type: grid\n")
    sampler = build_sampler(spec)
    study = optuna.create_study(sampler=sampler)
    assert isinstance(sampler, optuna.samplers.GridSampler)

    # The launcher's ask-and-tell loop: ask until the grid is exhausted.
    while not sampler.is_exhausted(study):
        trial = study.ask()
        params = suggest_params(trial, spec.space)
        study.tell(trial, float(params["n"]))  # type: ignore[arg-type]

    assert len(study.trials) == 30
    assert len({tuple(sorted(trial.params.items())) for trial in study.trials}) == 30


def test_default_pruner_is_median() -> None:
    pruner = build_pruner(spec_with(""))

    assert isinstance(pruner, optuna.pruners.MedianPruner)
    assert pruner._n_startup_trials == 5
    assert pruner._n_warmup_steps == 0


def test_several_directions_give_nop_pruner() -> None:
    spec = spec_with(
        "", BASE.replace("name: demo", "name: demo\n  directions: [maximize, minimize]")
    )

    assert isinstance(build_pruner(spec), optuna.pruners.NopPruner)


def test_none_pruner() -> None:
    assert isinstance(build_pruner(spec_with("pruner:\n  type: none\n")), optuna.pruners.NopPruner)


def test_median_options() -> None:
    pruner = build_pruner(
        spec_with(
            """\
            pruner:
              n_startup_trials: 2
              n_warmup_steps: 3
              interval_steps: 2
              n_min_trials: 4
            """
        )
    )

    assert isinstance(pruner, optuna.pruners.MedianPruner)
    assert pruner._n_startup_trials == 2
    assert pruner._n_warmup_steps == 3
    assert pruner._interval_steps == 2
    assert pruner._n_min_trials == 4


def test_percentile_options() -> None:
    pruner = build_pruner(
        spec_with("pruner:\n  type: percentile\n  percentile: 25\n  n_warmup_steps: 1\n")
    )

    assert type(pruner) is optuna.pruners.PercentilePruner
    assert pruner._percentile == 25
    assert pruner._n_warmup_steps == 1


def test_successive_halving_options() -> None:
    pruner = build_pruner(
        spec_with(
            """\
            pruner:
              type: successive_halving
              min_resource: 2
              reduction_factor: 3
              min_early_stopping_rate: 1
            """
        )
    )

    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert pruner._min_resource == 2
    assert pruner._reduction_factor == 3
    assert pruner._min_early_stopping_rate == 1


def test_successive_halving_auto_resource() -> None:
    pruner = build_pruner(spec_with("pruner:\n  type: successive_halving\n"))

    assert isinstance(pruner, optuna.pruners.SuccessiveHalvingPruner)
    assert pruner._min_resource is None


def test_hyperband_options() -> None:
    pruner = build_pruner(
        spec_with(
            """\
            pruner:
              type: hyperband
              min_resource: 1
              max_resource: 27
              reduction_factor: 3
            """
        )
    )

    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert pruner._min_resource == 1
    assert pruner._max_resource == 27
    assert pruner._reduction_factor == 3


def test_threshold_options() -> None:
    pruner = build_pruner(
        spec_with("pruner:\n  type: threshold\n  lower: 0.1\n  n_warmup_steps: 2\n")
    )

    assert isinstance(pruner, optuna.pruners.ThresholdPruner)
    assert pruner._lower == 0.1
    assert pruner._upper == float("inf")
    assert pruner._n_warmup_steps == 2
