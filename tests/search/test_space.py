"""Search space to Optuna: conditional suggestions on a real trial, and distributions."""

from __future__ import annotations

import textwrap

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hpo.search._loader import parse_spec
from hpo.search._space import is_active, space_distributions, suggest_params
from hpo.search._spec import ParamSpec

SPACE = """\
study:
  name: demo
objective:
  name: cnn
budget:
  n_trials: 10
space:
  lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
  width: {type: int, low: 8, high: 32, step: 8}
  dropout: {type: float, low: 0.0, high: 0.5, step: 0.1}
  optimizer: {type: categorical, choices: [adam, sgd]}
  momentum: {type: float, low: 0.5, high: 0.99, when: {optimizer: sgd}}
  nesterov: {type: categorical, choices: [true, false], when: {optimizer: sgd}}
  dampening: {type: float, low: 0.0, high: 0.5, when: {nesterov: false}}
"""


@pytest.fixture
def space() -> dict[str, ParamSpec]:
    return parse_spec(textwrap.dedent(SPACE)).space


@pytest.fixture(autouse=True)
def quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def ask_with(fixed: dict[str, object], space: dict[str, ParamSpec]) -> optuna.Trial:
    study = optuna.create_study()
    study.enqueue_trial(fixed)
    return study.ask()


def test_suggest_all_unconditional(space: dict[str, ParamSpec]) -> None:
    trial = ask_with({"optimizer": "adam"}, space)

    values = suggest_params(trial, space)

    assert list(values) == ["lr", "width", "dropout", "optimizer"]
    assert values["optimizer"] == "adam"
    assert 1e-4 <= float(values["lr"]) <= 0.1  # type: ignore[arg-type]
    assert values["width"] in (8, 16, 24, 32)
    assert trial.params == values


def test_suggest_conditional_chain(space: dict[str, ParamSpec]) -> None:
    trial = ask_with({"optimizer": "sgd", "nesterov": False}, space)

    values = suggest_params(trial, space)

    assert list(values) == [
        "lr",
        "width",
        "dropout",
        "optimizer",
        "momentum",
        "nesterov",
        "dampening",
    ]
    assert values["nesterov"] is False
    assert 0.5 <= float(values["momentum"]) <= 0.99  # type: ignore[arg-type]


def test_suggest_skips_when_condition_fails(space: dict[str, ParamSpec]) -> None:
    trial = ask_with({"optimizer": "sgd", "nesterov": True}, space)

    values = suggest_params(trial, space)

    assert "momentum" in values
    assert "dampening" not in values
    assert "dampening" not in trial.params


def test_suggest_uses_distributions(space: dict[str, ParamSpec]) -> None:
    trial = ask_with({"optimizer": "sgd", "nesterov": False}, space)

    suggest_params(trial, space)

    assert trial.distributions == space_distributions(space)


def test_suggest_over_many_trials(space: dict[str, ParamSpec]) -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        values = suggest_params(trial, space)
        study.tell(trial, 0.0)

        uses_sgd = values["optimizer"] == "sgd"
        without_nesterov = values.get("nesterov") is False
        assert ("momentum" in values) is uses_sgd
        assert ("dampening" in values) is without_nesterov
        assert round(float(values["dropout"]) * 10, 9) % 1 == 0  # type: ignore[arg-type]


def test_space_distributions(space: dict[str, ParamSpec]) -> None:
    distributions = space_distributions(space)

    assert distributions["lr"] == FloatDistribution(1e-4, 0.1, log=True)
    assert distributions["width"] == IntDistribution(8, 32, step=8)
    assert distributions["dropout"] == FloatDistribution(0.0, 0.5, step=0.1)
    assert distributions["optimizer"] == CategoricalDistribution(["adam", "sgd"])
    assert distributions["nesterov"] == CategoricalDistribution([True, False])
    assert list(distributions) == list(space)


def test_is_active_does_not_confuse_bool_and_int() -> None:
    param = parse_spec(
        textwrap.dedent(SPACE)
        + "  flag: {type: categorical, choices: [1, 0]}\n"
        + "  extra: {type: int, low: 1, high: 2, when: {flag: 1}}\n"
    ).space["extra"]

    assert is_active(param, {"flag": 1})
    assert not is_active(param, {"flag": True})
    assert not is_active(param, {})
