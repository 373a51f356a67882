"""Study file models: defaults, cross-checks and the helpers on StudySpec."""

from __future__ import annotations

import textwrap
from datetime import datetime

import pytest

from hpo.errors import SpecError
from hpo.search._loader import parse_spec
from hpo.search._spec import (
    BudgetSection,
    CategoricalParam,
    FloatParam,
    IntParam,
    MedianPrunerSpec,
    NopPrunerSpec,
    ObjectiveSection,
    StudySection,
    StudySpec,
    TpeSamplerSpec,
    cron_problems,
    render_study_name,
)

MINIMAL = """\
study:
  name: demo
objective:
  name: cnn
budget:
  n_trials: 10
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(textwrap.dedent(text))
    return caught.value.problems


def test_full_example_parses() -> None:
    spec = parse_spec(
        textwrap.dedent(
            """\
            study:
              name: digits-cnn
              storage: sqlite:///hpo.db
              direction: maximize
              metric: val_accuracy
              tags: {team: vision}
            objective:
              name: cnn
              args: {dataset: digits, epochs: 12}
            space:
              lr: {type: float, low: 1.0e-4, high: 0.1, log: true}
              width: {type: int, low: 8, high: 32, step: 8}
              optimizer: {type: categorical, choices: [adam, adamw, sgd]}
              momentum: {type: float, low: 0.5, high: 0.99, when: {optimizer: sgd}}
            sampler:
              type: tpe
              seed: 0
              n_startup_trials: 5
            pruner:
              type: median
              n_startup_trials: 5
            budget:
              n_trials: 40
              timeout: 10m
              trial_timeout: 2m
              max_retries: 1
            resources:
              cpus: 1
              gpus: 0.5
              parallelism: 2
            cluster:
              address: null
            schedule:
              cron: "0 2 * * *"
              timezone: Europe/Berlin
              name: "{study}-{date}"
              warm_start: 5
              missed: skip
              overlap: skip
            """
        )
    )

    assert spec.study.name == "digits-cnn"
    assert spec.study.storage == "sqlite:///hpo.db"
    assert spec.directions == ["maximize"]
    assert spec.metric_names == ["val_accuracy"]
    assert spec.study.tags == {"team": "vision"}
    assert spec.objective.args == {"dataset": "digits", "epochs": 12}
    assert list(spec.space) == ["lr", "width", "optimizer", "momentum"]
    assert spec.space["lr"] == FloatParam(low=1e-4, high=0.1, log=True)
    assert spec.space["width"] == IntParam(low=8, high=32, step=8)
    assert spec.space["optimizer"] == CategoricalParam(choices=("adam", "adamw", "sgd"))
    assert spec.space["momentum"].when == {"optimizer": "sgd"}
    assert spec.sampler == TpeSamplerSpec(seed=0, n_startup_trials=5)
    assert spec.pruner == MedianPrunerSpec(n_startup_trials=5)
    assert spec.budget == BudgetSection(n_trials=40, timeout=600, trial_timeout=120, max_retries=1)
    assert spec.resources.gpus == 0.5
    assert spec.resources.parallelism == 2
    assert spec.cluster.address is None
    assert spec.schedule is not None
    assert spec.schedule.warm_start == 5
    assert spec.schedule.timezone == "Europe/Berlin"


def test_minimal_file_defaults() -> None:
    spec = parse_spec(MINIMAL)

    assert spec.directions == ["minimize"]
    assert spec.metric_names == ["value"]
    assert spec.study.storage is None
    assert spec.study.tags == {}
    assert spec.objective.args == {}
    assert spec.space == {}
    assert spec.sampler == TpeSamplerSpec()
    assert spec.pruner == MedianPrunerSpec()
    assert spec.budget.n_trials == 10
    assert spec.budget.timeout is None
    assert spec.budget.trial_timeout is None
    assert spec.budget.max_retries == 1
    assert spec.resources.cpus == 1
    assert spec.resources.gpus == 0
    assert spec.resources.parallelism == 1
    assert spec.cluster.address is None
    assert spec.schedule is None


def test_schedule_defaults() -> None:
    spec = parse_spec(MINIMAL + "schedule:\n  cron: '*/15 0-6 1,15 jan-mar sun'\n")

    assert spec.schedule is not None
    assert spec.schedule.timezone == "UTC"
    assert spec.schedule.name == "{study}-{date}"
    assert spec.schedule.warm_start == 0
    assert spec.schedule.missed == "skip"
    assert spec.schedule.overlap == "skip"


def test_models_are_frozen() -> None:
    spec = parse_spec(MINIMAL)

    with pytest.raises(ValueError, match="frozen"):
        spec.budget.n_trials = 3  # type: ignore[misc]


def test_models_build_in_python() -> None:
    spec = StudySpec(
        study=StudySection(name="demo", directions=("maximize", "minimize")),
        objective=ObjectiveSection(name="cnn"),
        pruner=NopPrunerSpec(),
        budget=BudgetSection(n_trials=3),
    )

    assert spec.directions == ["maximize", "minimize"]
    assert spec.metric_names == ["value_0", "value_1"]


def test_several_directions_default_to_no_pruner() -> None:
    spec = parse_spec(
        MINIMAL.replace("name: demo", "name: demo\n  directions: [maximize, minimize]")
    )

    assert spec.pruner == NopPrunerSpec()
    assert spec.directions == ["maximize", "minimize"]


def test_metric_list_per_direction() -> None:
    spec = parse_spec(
        MINIMAL.replace(
            "name: demo",
            "name: demo\n  directions: [maximize, minimize]\n  metric: [accuracy, params]",
        )
    )

    assert spec.metric_names == ["accuracy", "params"]


def test_pruner_rejected_for_several_directions() -> None:
    found = problems_of(
        MINIMAL.replace("name: demo", "name: demo\n  directions: [maximize, minimize]")
        + "pruner:\n  type: median\n"
    )

    assert found == [
        "study.yaml:9: pruner.type: pruning is not supported for several objectives; "
        "set pruner.type: none"
    ]


def test_cmaes_rejected_for_several_directions() -> None:
    found = problems_of(
        MINIMAL.replace("name: demo", "name: demo\n  directions: [maximize, minimize]")
        + "sampler:\n  type: cmaes\n"
    )

    assert found == [
        "study.yaml:9: sampler.type: cmaes supports one objective, but got 2 directions; "
        "use tpe, nsgaii, gp, random or qmc"
    ]


def test_nsgaii_allowed_for_one_objective() -> None:
    spec = parse_spec(MINIMAL + "sampler:\n  type: nsgaii\n")

    assert spec.sampler.type == "nsgaii"


def test_direction_and_directions_together() -> None:
    found = problems_of(
        MINIMAL.replace(
            "name: demo", "name: demo\n  direction: maximize\n  directions: [maximize]"
        )
    )

    assert found == [
        "study.yaml:4: study.directions: must not be given together with direction; keep one"
    ]


def test_metric_length_must_match_directions() -> None:
    found = problems_of(
        MINIMAL.replace(
            "name: demo", "name: demo\n  directions: [maximize, minimize]\n  metric: [a, b, c]"
        )
    )

    assert found == [
        "study.yaml:4: study.metric: must have one name per direction (2), but got 3 names"
    ]


def test_single_metric_for_several_directions() -> None:
    found = problems_of(
        MINIMAL.replace(
            "name: demo", "name: demo\n  directions: [maximize, minimize]\n  metric: accuracy"
        )
    )

    assert found == [
        "study.yaml:4: study.metric: must be a list with one name per direction (2), "
        "but got 'accuracy'"
    ]


def test_budget_needs_trials_or_timeout() -> None:
    found = problems_of(MINIMAL.replace("  n_trials: 10", "  max_retries: 2"))

    assert found == ["study.yaml:5: budget: must set n_trials, timeout or both, but got neither"]


def test_missing_budget_section() -> None:
    found = problems_of("study:\n  name: demo\nobjective:\n  name: cnn\n")

    assert found == ["study.yaml:1: budget: must set n_trials, timeout or both, but got neither"]


def test_timeout_alone_is_a_budget() -> None:
    spec = parse_spec(MINIMAL.replace("n_trials: 10", "timeout: 90"))

    assert spec.budget.timeout == 90
    assert spec.budget.n_trials is None


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("90s", 90), ("10m", 600), ("2h", 7200), ("1h30m", 5400), ("1d", 86400), ("1.5", 1.5)],
)
def test_durations(written: str, seconds: float) -> None:
    spec = parse_spec(MINIMAL + f"  timeout: '{written}'\n  trial_timeout: {written}\n")

    assert spec.budget.timeout == seconds
    assert spec.budget.trial_timeout == seconds


def test_bad_durations() -> None:
    found = problems_of(MINIMAL + "  timeout: 10 minutes\n  trial_timeout: -5\n")

    assert found == [
        "study.yaml:7: budget.timeout: must be a number of seconds or a duration such as "
        "90s, 10m, 2h or 1h30m, but got '10 minutes'",
        "study.yaml:8: budget.trial_timeout: must be > 0, but got -5",
    ]


def test_resource_bounds() -> None:
    found = problems_of(MINIMAL + "resources:\n  cpus: 0\n  gpus: -1\n  parallelism: 0\n")

    assert found == [
        "study.yaml:8: resources.cpus: must be > 0, but got 0",
        "study.yaml:9: resources.gpus: must be >= 0, but got -1",
        "study.yaml:10: resources.parallelism: must be >= 1, but got 0",
    ]


def test_max_retries_bound() -> None:
    found = problems_of(MINIMAL + "  max_retries: -1\n")

    assert found == ["study.yaml:7: budget.max_retries: must be >= 0, but got -1"]


def test_low_above_high() -> None:
    found = problems_of(MINIMAL + "space:\n  lr: {type: float, low: 0.1, high: 0.001}\n")

    assert found == ["study.yaml:8: space.lr: low must be <= high, but got low=0.1, high=0.001"]


def test_log_needs_positive_low() -> None:
    found = problems_of(
        MINIMAL
        + "space:\n  lr: {type: float, low: 0.0, high: 1, log: true}\n"
        + "  n: {type: int, low: 0, high: 8, log: true}\n"
    )

    assert found == [
        "study.yaml:8: space.lr: log scale needs low > 0, but got low=0.0",
        "study.yaml:9: space.n: log scale needs low > 0, but got low=0",
    ]


def test_low_above_high_and_log_both_reported() -> None:
    found = problems_of(MINIMAL + "space:\n  lr: {type: float, low: 0, high: -1, log: true}\n")

    assert found == [
        "study.yaml:8: space.lr: low must be <= high, but got low=0.0, high=-1.0",
        "study.yaml:8: space.lr: log scale needs low > 0, but got low=0.0",
    ]


def test_float_log_with_step() -> None:
    found = problems_of(
        MINIMAL + "space:\n  lr:\n    type: float\n    low: 0.1\n    high: 1\n    log: true\n"
        "    step: 0.1\n"
    )

    assert found == [
        "study.yaml:13: space.lr.step: must be unset when log is true, but got step=0.1"
    ]


def test_int_log_with_step() -> None:
    found = problems_of(
        MINIMAL + "space:\n  n: {type: int, low: 1, high: 9, log: true, step: 2}\n"
    )

    assert found == ["study.yaml:8: space.n.step: must be 1 when log is true, but got step=2"]


def test_int_step_below_one() -> None:
    found = problems_of(MINIMAL + "space:\n  n: {type: int, low: 1, high: 9, step: 0}\n")

    assert found == ["study.yaml:8: space.n.step: must be >= 1, but got 0"]


def test_float_step_must_be_positive() -> None:
    found = problems_of(MINIMAL + "space:\n  x: {type: float, low: 0, high: 1, step: 0}\n")

    assert found == ["study.yaml:8: space.x.step: must be > 0, but got 0"]


def test_range_must_be_multiple_of_step() -> None:
    found = problems_of(
        MINIMAL
        + "space:\n  n: {type: int, low: 8, high: 30, step: 8}\n"
        + "  x: {type: float, low: 0, high: 1, step: 0.3}\n"
        + "  ok: {type: float, low: 0.5, high: 0.99, step: 0.01}\n"
    )

    assert found == [
        "study.yaml:8: space.n: high - low must be a multiple of step, but got "
        "low=8, high=30, step=8",
        "study.yaml:9: space.x: high - low must be a multiple of step, but got "
        "low=0.0, high=1.0, step=0.3",
    ]


def test_categorical_empty_choices() -> None:
    found = problems_of(MINIMAL + "space:\n  opt: {type: categorical, choices: []}\n")

    assert found == ["study.yaml:8: space.opt.choices: must be a non-empty list, but got []"]


def test_categorical_duplicate_choices() -> None:
    found = problems_of(
        MINIMAL + "space:\n  opt: {type: categorical, choices: [adam, sgd, adam, 1, true]}\n"
    )

    assert found == [
        "study.yaml:8: space.opt.choices: must not repeat a value, but got 'adam' more than once"
    ]


def test_categorical_choice_must_be_scalar() -> None:
    found = problems_of(MINIMAL + "space:\n  opt: {type: categorical, choices: [[1, 2]]}\n")

    assert found == [
        "study.yaml:8: space.opt.choices: must be a list of strings, numbers, booleans or null, "
        "but got [1, 2]"
    ]


def test_categorical_keeps_value_types() -> None:
    spec = parse_spec(
        MINIMAL + "space:\n  c: {type: categorical, choices: [1, 2.5, true, relu, null]}\n"
    )

    assert spec.space["c"] == CategoricalParam(choices=(1, 2.5, True, "relu", None))


def test_when_names_unknown_parameter() -> None:
    found = problems_of(
        MINIMAL
        + "space:\n  opt: {type: categorical, choices: [adam, sgd]}\n"
        + "  momentum: {type: float, low: 0, high: 1, when: {optimiser: sgd}}\n"
    )

    assert found == [
        "study.yaml:9: space.momentum.when.optimiser: must name a parameter defined above "
        "momentum (opt), but got an unknown parameter 'optimiser'"
    ]


def test_when_names_later_parameter() -> None:
    found = problems_of(
        MINIMAL
        + "space:\n  momentum: {type: float, low: 0, high: 1, when: {opt: sgd}}\n"
        + "  opt: {type: categorical, choices: [adam, sgd]}\n"
    )

    assert found == [
        "study.yaml:8: space.momentum.when.opt: must name a parameter defined above "
        "momentum (none), but got a later parameter 'opt'"
    ]


def test_when_value_not_a_choice() -> None:
    found = problems_of(
        MINIMAL
        + "space:\n"
        + "  opt: {type: categorical, choices: [adam, sgd]}\n"
        + "  momentum:\n"
        + "    type: float\n"
        + "    low: 0\n"
        + "    high: 1\n"
        + "    when:\n"
        + "      opt: sdg\n"
    )

    assert found == [
        "study.yaml:14: space.momentum.when.opt: must be one of 'adam', 'sgd', but got 'sdg'"
    ]


def test_when_value_outside_int_range() -> None:
    found = problems_of(
        MINIMAL
        + "space:\n  layers: {type: int, low: 1, high: 3}\n"
        + "  width2: {type: int, low: 8, high: 64, when: {layers: 5}}\n"
    )

    assert found == [
        "study.yaml:9: space.width2.when.layers: must be an integer within [1, 3], but got 5"
    ]


def test_grid_needs_float_step() -> None:
    found = problems_of(
        MINIMAL
        + "space:\n"
        + "  x: {type: float, low: 0, high: 1}\n"
        + "  y: {type: float, low: 0, high: 1, step: 0.5}\n"
        + "sampler:\n  type: grid\n"
    )

    assert found == [
        "study.yaml:8: space.x: grid sampler needs a step for a float parameter, but got none; "
        "add step, or use type int or categorical"
    ]


def test_grid_needs_a_space() -> None:
    found = problems_of(MINIMAL + "sampler:\n  type: grid\n")

    assert found == [
        "study.yaml:8: sampler.type: grid needs a non-empty space, but got no parameters"
    ]


def test_percentile_bounds() -> None:
    found = problems_of(MINIMAL + "pruner:\n  type: percentile\n  percentile: 120\n")

    assert found == ["study.yaml:9: pruner.percentile: must be <= 100, but got 120"]


def test_threshold_needs_a_bound() -> None:
    found = problems_of(MINIMAL + "pruner:\n  type: threshold\n  n_warmup_steps: 2\n")

    assert found == ["study.yaml:7: pruner: must set lower, upper or both, but got neither"]


def test_threshold_lower_above_upper() -> None:
    found = problems_of(MINIMAL + "pruner:\n  type: threshold\n  lower: 2\n  upper: 1\n")

    assert found == ["study.yaml:7: pruner: lower must be <= upper, but got lower=2.0, upper=1.0"]


def test_hyperband_resources() -> None:
    found = problems_of(
        MINIMAL + "pruner:\n  type: hyperband\n  min_resource: 5\n  max_resource: 2\n"
    )

    assert found == [
        "study.yaml:10: pruner.max_resource: must be >= min_resource, but got "
        "min_resource=5, max_resource=2"
    ]


def test_min_resource_auto_or_integer() -> None:
    found = problems_of(MINIMAL + "pruner:\n  type: successive_halving\n  min_resource: often\n")

    assert found == [
        "study.yaml:9: pruner.min_resource: must be auto or an integer >= 1, but got 'often'"
    ]


def test_objective_import_path_syntax() -> None:
    assert parse_spec(MINIMAL.replace("name: cnn", "name: my_pkg.train:objective"))
    for bad in ("my_pkg:", ":objective", "my-pkg.train:objective", "pkg.train:obj.x"):
        found = problems_of(MINIMAL.replace("name: cnn", f"name: '{bad}'"))

        assert found == [
            "study.yaml:4: objective.name: must be a built-in name or "
            f"package.module:function, but got {bad!r}"
        ]


def test_unknown_study_name_placeholder() -> None:
    found = problems_of(MINIMAL.replace("name: demo", "name: demo-{day}"))

    assert found == [
        "study.yaml:2: study.name: placeholders must be one of {date}, {time}, {datetime}, "
        "but got {day}; write {{ for a brace"
    ]


def test_unbalanced_brace_in_name() -> None:
    found = problems_of(MINIMAL.replace("name: demo", "name: 'demo-{date'"))

    assert found == [
        "study.yaml:2: study.name: must use {...} placeholders with matching braces, "
        "but got 'demo-{date'"
    ]


def test_schedule_name_placeholders() -> None:
    found = problems_of(MINIMAL + "schedule:\n  cron: '0 2 * * *'\n  name: '{study}-{week}'\n")

    assert found == [
        "study.yaml:9: schedule.name: placeholders must be one of {study}, {date}, {time}, "
        "{datetime}, but got {week}; write {{ for a brace"
    ]


def test_render_study_name() -> None:
    now = datetime(2024, 5, 1, 2, 3, 4)

    assert render_study_name("sweep-{date}", now) == "sweep-2024-05-01"
    assert render_study_name("sweep-{time}", now) == "sweep-02-03-04"
    assert render_study_name("sweep-{datetime}", now) == "sweep-2024-05-01T02-03-04"
    assert render_study_name("{study}-{date}", now, study="cnn") == "cnn-2024-05-01"
    assert render_study_name("plain {{x}}", now) == "plain {x}"


def test_render_needs_study_for_placeholder() -> None:
    with pytest.raises(ValueError, match="needs a value for 'study'"):
        render_study_name("{study}-{date}", datetime(2024, 5, 1))


@pytest.mark.parametrize(
    "expression",
    ["0 2 * * *", "*/5 * * * *", "0 0 1 jan *", "0 9-17/2 * * mon-fri", "59 23 31 12 7"],
)
def test_valid_cron(expression: str) -> None:
    assert cron_problems(expression) == []


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        (
            "0 2 * *",
            "must have 5 fields (minute hour day-of-month month day-of-week), "
            "but got 4 in '0 2 * *'",
        ),
        ("60 2 * * *", "minute must be within 0-59, but got '60'"),
        ("0 24 * * *", "hour must be within 0-23, but got '24'"),
        ("0 0 0 * *", "day of month must be within 1-31, but got '0'"),
        ("0 0 * 13 *", "month must be within 1-12, but got '13'"),
        ("0 0 * * 8", "day of week must be within 0-7, but got '8'"),
        ("0 5-2 * * *", "hour range must go upwards, but got '5-2'"),
        ("*/0 * * * *", "minute step must be >= 1, but got '*/0'"),
        ("0 ? * * *", "hour must be *, a number, a range or a list, but got '?'"),
    ],
)
def test_invalid_cron(expression: str, message: str) -> None:
    assert cron_problems(expression) == [message]


def test_invalid_cron_in_file() -> None:
    found = problems_of(MINIMAL + "schedule:\n  cron: '0 25 * * *'\n")

    assert found == ["study.yaml:8: schedule.cron: hour must be within 0-23, but got '25'"]


def test_unknown_timezone() -> None:
    found = problems_of(MINIMAL + "schedule:\n  cron: '0 2 * * *'\n  timezone: Mars/Olympus\n")

    assert found == [
        "study.yaml:9: schedule.timezone: must be an IANA time zone such as UTC or "
        "Europe/Berlin, but got 'Mars/Olympus'"
    ]


def test_schedule_enumerations() -> None:
    found = problems_of(
        MINIMAL + "schedule:\n  cron: '0 2 * * *'\n  missed: run-once\n  overlap: wait\n"
    )

    assert found == [
        "study.yaml:9: schedule.missed: must be one of skip, run_once, but got 'run-once'; "
        "did you mean 'run_once'?",
        "study.yaml:10: schedule.overlap: must be one of skip, queue, but got 'wait'",
    ]
