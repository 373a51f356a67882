"""Reading study files: YAML quirks, line numbers, environment variables and error wording."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hpo.errors import SpecError
from hpo.search._loader import load_spec, parse_spec

MINIMAL = """\
study:
  name: demo
objective:
  name: cnn
budget:
  n_trials: 10
"""


def problems_of(text: str, path: str = "study.yaml") -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(textwrap.dedent(text), path)
    return caught.value.problems


def test_load_spec_reads_file(tmp_path: Path) -> None:
    study_file = tmp_path / "study.yaml"
    study_file.write_text(MINIMAL)

    spec = load_spec(study_file)

    assert spec.study.name == "demo"


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    with pytest.raises(SpecError) as caught:
        load_spec(missing)

    assert caught.value.problems == [f"{missing}: file not found"]
    assert caught.value.exit_code == 2
    assert str(caught.value) == f"{missing}: file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="is a directory, but a study file was expected"):
        load_spec(tmp_path)


def test_error_names_file_from_load(tmp_path: Path) -> None:
    study_file = tmp_path / "sweep.yaml"
    study_file.write_text(MINIMAL.replace("n_trials: 10", "n_trials: -1"))

    with pytest.raises(SpecError) as caught:
        load_spec(study_file)

    assert caught.value.problems == [f"{study_file}:6: budget.n_trials: must be >= 1, but got -1"]


def test_yaml_syntax_error_line() -> None:
    found = problems_of("study:\n  name: demo\n  tags: {a: 1\nobjective:\n  name: cnn\n")

    assert len(found) == 1
    assert found[0].startswith("study.yaml:4: invalid YAML: ")


def test_tab_indentation_is_a_syntax_error() -> None:
    found = problems_of("study:\n\tname: demo\n")

    assert len(found) == 1
    assert found[0].startswith("study.yaml:2: invalid YAML: ")


def test_empty_file() -> None:
    assert problems_of("") == [
        "study.yaml:1: the file is empty, but a study needs study, objective and budget"
    ]


def test_top_level_must_be_mapping() -> None:
    assert problems_of("- study\n- objective\n") == [
        "study.yaml:1: must be a mapping of sections such as study:, "
        "but got ['study', 'objective']"
    ]


def test_several_documents_rejected() -> None:
    found = problems_of(MINIMAL + "---\nstudy: {name: other}\n")

    assert len(found) == 1
    assert found[0].startswith("study.yaml:7: invalid YAML: ")


def test_python_tags_rejected() -> None:
    found = problems_of(MINIMAL.replace("name: cnn", "name: !!python/object/apply:os.system [ls]"))

    assert len(found) == 1
    assert found[0].startswith("study.yaml:4: invalid YAML: could not determine a constructor")


def test_duplicate_key_rejected() -> None:
    found = problems_of(MINIMAL + "budget:\n  n_trials: 20\n")

    assert found == ["study.yaml:7: budget: duplicate key; the first is on line 5"]


def test_duplicate_nested_key_rejected() -> None:
    found = problems_of(MINIMAL.replace("name: demo", "name: demo\n  name: again"))

    assert found == ["study.yaml:3: study.name: duplicate key; the first is on line 2"]


def test_duplicate_and_validation_problems_together() -> None:
    found = problems_of(MINIMAL + "budget:\n  n_trials: 20\nresources:\n  cpus: 0\n")

    assert found == [
        "study.yaml:7: budget: duplicate key; the first is on line 5",
        "study.yaml:10: resources.cpus: must be > 0, but got 0",
    ]


def test_unknown_key_suggestion() -> None:
    found = problems_of(MINIMAL.replace("n_trials: 10", "n_trials: 10\n  n_trails: 40"))

    assert found == ["study.yaml:7: budget.n_trails: unknown key; did you mean 'n_trials'?"]


def test_unknown_section_suggestion() -> None:
    found = problems_of(MINIMAL + "resource:\n  cpus: 2\n")

    assert found == ["study.yaml:7: resource: unknown key; did you mean 'resources'?"]


def test_unknown_key_without_close_match_lists_allowed() -> None:
    found = problems_of(MINIMAL + "resources:\n  memory: 4G\n")

    assert found == [
        "study.yaml:8: resources.memory: unknown key; allowed keys are cpus, gpus, parallelism"
    ]


def test_option_of_other_sampler_type() -> None:
    found = problems_of(MINIMAL + "sampler:\n  type: tpe\n  population_size: 20\n")

    assert found == [
        "study.yaml:9: sampler.population_size: unknown key for type tpe; "
        "population_size is an option of nsgaii"
    ]


def test_option_of_other_pruner_type() -> None:
    found = problems_of(MINIMAL + "pruner:\n  type: median\n  reduction_factor: 3\n")

    assert found == [
        "study.yaml:9: pruner.reduction_factor: unknown key for type median; "
        "reduction_factor is an option of successive_halving, hyperband"
    ]


def test_sampler_option_misspelt() -> None:
    found = problems_of(MINIMAL + "sampler:\n  n_startup_trial: 5\n")

    assert found == [
        "study.yaml:8: sampler.n_startup_trial: unknown key; did you mean 'n_startup_trials'?"
    ]


def test_sampler_type_suggestion() -> None:
    found = problems_of(MINIMAL + "sampler:\n  seed: 1\n  type: tpee\n")

    assert found == [
        "study.yaml:9: sampler.type: must be one of tpe, random, cmaes, gp, nsgaii, grid, qmc, "
        "but got 'tpee'; did you mean 'tpe'?"
    ]


def test_pruner_type_listed() -> None:
    found = problems_of(MINIMAL + "pruner:\n  type: early\n")

    assert found == [
        "study.yaml:8: pruner.type: must be one of median, none, percentile, "
        "successive_halving, hyperband, threshold, but got 'early'"
    ]


def test_negative_sampler_option() -> None:
    found = problems_of(MINIMAL + "sampler:\n  type: tpe\n  seed: 0\n  n_startup_trials: -3\n")

    assert found == ["study.yaml:10: sampler.n_startup_trials: must be >= 0, but got -3"]


def test_param_type_missing_and_unknown() -> None:
    found = problems_of(
        MINIMAL
        + "space:\n"
        + "  lr: {low: 0.1, high: 1}\n"
        + "  width:\n"
        + "    type: integer\n"
        + "    low: 1\n"
    )

    assert found == [
        "study.yaml:8: space.lr.type: missing required key; "
        "must be one of float, int, categorical",
        "study.yaml:10: space.width.type: must be one of float, int, categorical, "
        "but got 'integer'; did you mean 'int'?",
    ]


def test_param_must_be_mapping() -> None:
    found = problems_of(MINIMAL + "space:\n  lr: 0.1\n")

    assert found == ["study.yaml:8: space.lr: must be a mapping, but got 0.1"]


def test_missing_required_keys_use_parent_line() -> None:
    found = problems_of(
        "objective:\n  args: {}\nbudget: {n_trials: 1}\nspace:\n  lr:\n    type: float\n"
        "    low: 0.1\n"
    )

    assert found == [
        "study.yaml:1: study: missing required key",
        "study.yaml:1: objective.name: missing required key",
        "study.yaml:5: space.lr.high: missing required key",
    ]


def test_type_errors_translated() -> None:
    found = problems_of(
        MINIMAL.replace("n_trials: 10", "n_trials: abc")
        + "resources:\n  gpus: lots\n  parallelism: 1.5\n"
        + "space:\n  log_x: {type: float, low: 1, high: 2, log: maybe}\n"
        + "notes: 1\n"
    )

    assert found == [
        "study.yaml:6: budget.n_trials: must be an integer, but got 'abc'",
        "study.yaml:8: resources.gpus: must be a number, but got 'lots'",
        "study.yaml:9: resources.parallelism: must be an integer, but got 1.5",
        "study.yaml:11: space.log_x.log: must be true or false, but got 'maybe'",
        "study.yaml:12: notes: unknown key; allowed keys are study, objective, space, "
        "sampler, pruner, budget, resources, cluster, schedule",
    ]


def test_no_pydantic_wording() -> None:
    found = problems_of(
        "study: [1]\nobjective: {name: {a: 1}}\nbudget: {n_trials: x, timeout: [1]}\n"
        "sampler: {type: tpe, multivariate: 3}\nspace: {a: {type: categorical}}\n"
    )

    text = "\n".join(found)
    assert "Input should" not in text
    assert "pydantic" not in text
    assert "https://" not in text
    assert "Traceback" not in text
    assert "study.yaml:1: study: must be a mapping, but got [1]" in found
    assert "study.yaml:2: objective.name: must be a string, but got {'a': 1}" in found


def test_string_field_rejects_boolean() -> None:
    found = problems_of(MINIMAL.replace("name: demo", "name: demo\n  tags: {country: no}"))

    assert found == [
        "study.yaml:3: study.tags.country: must be a string, but got false; "
        "quote it to keep it as text"
    ]


def test_lines_of_nested_keys() -> None:
    found = problems_of(
        """\
        study:
          name: demo
          directions:
            - maximize
            - minimise
        objective:
          name: cnn
        space:
          lr:
            type: float
            low: 1.0e-4
            high: 0.1
            log: true
          momentum:
            type: float
            low: 0.5
            high: 0.99
            when:
              optimizer: sgd
        budget:
          n_trials: 10
        """
    )

    assert found == [
        "study.yaml:5: study.directions[1]: must be one of minimize, maximize, but got "
        "'minimise'; did you mean 'minimize'?",
        "study.yaml:19: space.momentum.when.optimizer: must name a parameter defined above "
        "momentum (lr), but got an unknown parameter 'optimizer'",
    ]


def test_exponent_without_dot_is_float() -> None:
    spec = parse_spec(MINIMAL + "space:\n  lr: {type: float, low: 1e-4, high: 1E2, log: true}\n")

    assert spec.space["lr"].low == pytest.approx(1e-4)
    assert spec.space["lr"].high == pytest.approx(100.0)


def test_numbers_accepted_as_strings() -> None:
    spec = parse_spec(
        MINIMAL.replace("name: demo", "name: 2024\n  metric: 1\n  tags: {year: 2024, v: 1.5}")
    )

    assert spec.study.name == "2024"
    assert spec.study.metric == "1"
    assert spec.study.tags == {"year": "2024", "v": "1.5"}


def test_dates_stay_text() -> None:
    spec = parse_spec(
        MINIMAL.replace("name: demo", "name: 2024-05-01\n  tags: {since: 2024-05-01}")
        + "  n_trials: 10\n".replace("  n_trials: 10\n", "")
    )

    assert spec.study.name == "2024-05-01"
    assert spec.study.tags == {"since": "2024-05-01"}


def test_empty_values_are_absent() -> None:
    spec = parse_spec(
        MINIMAL.replace("name: demo", "name: demo\n  storage:\n  direction:")
        + "sampler:\npruner:\nresources:\n  gpus:\ncluster:\n  address: null\nschedule:\n"
    )

    assert spec.study.storage is None
    assert spec.directions == ["minimize"]
    assert spec.sampler.type == "tpe"
    assert spec.pruner.type == "median"
    assert spec.resources.gpus == 0
    assert spec.cluster.address is None
    assert spec.schedule is None


def test_empty_required_key_is_missing() -> None:
    found = problems_of(MINIMAL.replace("name: demo", "name:"))

    assert found == ["study.yaml:2: study.name: missing required key"]


def test_null_kept_in_objective_args() -> None:
    spec = parse_spec(MINIMAL.replace("name: cnn", "name: cnn\n  args: {limit: null, lr: 0.1}"))

    assert spec.objective.args == {"limit": None, "lr": 0.1}


def test_numeric_keys_are_names() -> None:
    spec = parse_spec(MINIMAL + "space:\n  2024: {type: int, low: 1, high: 2}\n")

    assert list(spec.space) == ["2024"]


def test_merge_keys() -> None:
    spec = parse_spec(
        MINIMAL
        + "space:\n"
        + "  a: &unit {type: float, low: 0, high: 1}\n"
        + "  b: {<<: *unit, high: 2}\n"
    )

    assert spec.space["b"].low == 0
    assert spec.space["b"].high == 2


def test_alias_expansion_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 8):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 10)}]")
    found = problems_of("\n".join(lines) + "\n")

    assert len(found) == 1
    assert "invalid YAML: more than 100000 values after expanding aliases" in found[0]


def test_env_expansion(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPO_STORAGE", "postgresql://hpo:secret@127.0.0.1/hpo")
    monkeypatch.setenv("HPO_TRIALS", "25")
    monkeypatch.delenv("HPO_TEAM", raising=False)

    spec = parse_spec(
        MINIMAL.replace(
            "name: demo",
            "name: demo\n  storage: ${HPO_STORAGE}\n  tags: {team: '${HPO_TEAM:-vision}'}",
        ).replace("n_trials: 10", "n_trials: ${HPO_TRIALS}")
    )

    assert spec.study.storage == "postgresql://hpo:secret@127.0.0.1/hpo"
    assert spec.study.tags == {"team": "vision"}
    assert spec.budget.n_trials == 25


def test_env_default_used_for_empty_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPO_EMPTY", "")

    spec = parse_spec(
        MINIMAL.replace(
            "name: cnn", "name: cnn\n  args: {a: '${HPO_EMPTY:-x}', b: 'v${HPO_EMPTY}'}"
        )
    )

    assert spec.objective.args == {"a": "x", "b": "v"}


def test_env_dollar_escape(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPO_X", "value")

    spec = parse_spec(
        MINIMAL.replace(
            "name: cnn", "name: cnn\n  args: {a: 'cost $$5 ${HPO_X} $$${HPO_X}', b: '$HOME'}"
        )
    )

    assert spec.objective.args == {"a": "cost $5 value $value", "b": "$HOME"}


def test_env_in_lists_and_args(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HPO_OPT", "adamw")

    spec = parse_spec(
        MINIMAL + "space:\n  opt: {type: categorical, choices: [adam, '${HPO_OPT}']}\n"
    )

    assert spec.space["opt"].choices == ("adam", "adamw")


def test_unset_variable_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPO_STORAGE", raising=False)
    monkeypatch.delenv("HPO_OTHER", raising=False)

    found = problems_of(
        MINIMAL.replace("name: demo", "name: demo\n  storage: ${HPO_STORAGE}")
        + "cluster:\n  address: ${HPO_OTHER}\n"
    )

    # An unset variable in study.storage is left for --storage to replace (see the next test).
    assert found == [
        "study.yaml:9: cluster.address: environment variable HPO_OTHER is not set; set it, "
        "or give a default as ${HPO_OTHER:-default}",
    ]


def test_unset_storage_variable_left_for_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo.errors import UsageError
    from hpo.storage import resolve_storage_url

    monkeypatch.delenv("HPO_STORAGE", raising=False)
    spec = parse_spec(MINIMAL.replace("name: demo", "name: demo\n  storage: ${HPO_STORAGE}"))

    assert spec.study.storage == "${HPO_STORAGE}"
    assert resolve_storage_url("sqlite:///flag.db", spec.study.storage) == "sqlite:///flag.db"
    with pytest.raises(UsageError, match="uses the environment variable HPO_STORAGE, which is"):
        resolve_storage_url(None, spec.study.storage)


def test_malformed_variable_reference() -> None:
    found = problems_of(MINIMAL.replace("name: demo", "name: demo\n  storage: '${1BAD}/${OPEN'"))

    assert found == [
        "study.yaml:3: study.storage: must reference a variable as ${NAME} or "
        "${NAME:-default}, but got '${1BAD}'; write $$ for a literal $",
        "study.yaml:3: study.storage: must reference a variable as ${NAME} or "
        "${NAME:-default}, but got '${'; write $$ for a literal $",
    ]


def test_all_problems_reported() -> None:
    found = problems_of(
        """\
        study:
          name: demo
          direction: maximize
        objective:
          name: cnn
        sampler:
          type: tpe
          n_startup_trials: -3
        budget:
          n_trails: 40
        resources:
          parallelism: 0
        """
    )

    assert found == [
        "study.yaml:8: sampler.n_startup_trials: must be >= 0, but got -3",
        "study.yaml:10: budget.n_trails: unknown key; did you mean 'n_trials'?",
        "study.yaml:12: resources.parallelism: must be >= 1, but got 0",
    ]


def test_error_message_layout() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(MINIMAL.replace("n_trials: 10", "n_trials: 0"), "sweeps/nightly.yaml")

    assert caught.value.path == "sweeps/nightly.yaml"
    assert str(caught.value) == "sweeps/nightly.yaml:6: budget.n_trials: must be >= 1, but got 0"
