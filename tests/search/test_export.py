"""`hpo trials`, `hpo export` and `hpo import` on real SQLite and PostgreSQL databases."""

from __future__ import annotations

import csv
import io
import json
import logging
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState, create_trial
from typer.testing import CliRunner

from hpo.search._cli import app
from hpo.search._export import SYSTEM_ATTR_EXPORTED_STATE

# Written as export_objectives.py. This process and the reused Ray workers keep a module once
# imported, so each test file gives its objectives module a name of its own.
OBJECTIVES = textwrap.dedent(
    """
    import optuna


    def mixed_outcomes(trial):
        # Fails for small x; otherwise half the trials climb and half sink, so some are pruned.
        x = trial.suggest_float("x", -1.0, 1.0)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        n = trial.suggest_int("n", 1, 4)
        trial.set_user_attr("kind_seen", kind)
        trial.set_user_attr("history", {"seen": [x, n]})
        if x < -0.6:
            raise ValueError(f"x={x} is too small")
        good = trial.number % 2 == 0
        for step in range(4):
            trial.report(float(step if good else -step) + x, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return x + n
    """
)

MIXED_STUDY = """
    study:
      name: mixed-outcomes
      direction: maximize
      metric: score
      tags: {team: vision, sweep: nightly}
    objective:
      name: export_objectives:mixed_outcomes
    sampler: {type: random, seed: 7}
    pruner: {type: median, n_startup_trials: 2, n_warmup_steps: 1}
    budget:
      n_trials: 12
    resources:
      # One trial at a time, so that the pruner sees the same earlier trials on every run.
      parallelism: 1
"""


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    """Put back the root logger's handlers, which each CLI call replaces with its own.

    A handler left behind writes to the closed output stream of an earlier CliRunner call.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers = handlers
    root.setLevel(level)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def make_study(storage_url: str, name: str = "made") -> optuna.Study:
    """Create a study in this process with complete, pruned and failed trials."""
    study = optuna.create_study(study_name=name, storage=storage_url, direction="minimize")
    study.set_user_attr("owner", "tests")

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -4.0, 4.0)
        for step in range(3):
            trial.report(x * x + 2 - step, step)
        if trial.number == 1:
            raise optuna.TrialPruned()
        if trial.number == 2:
            raise ValueError("broken")
        trial.set_user_attr("x_squared", x * x)
        return x * x

    study.optimize(objective, n_trials=5, catch=(ValueError,))
    return study


def assert_same_trials(imported: list[FrozenTrial], original: list[FrozenTrial]) -> None:
    assert len(imported) == len(original)
    for copy, trial in zip(imported, original, strict=True):
        assert copy.number == trial.number
        assert copy.state == trial.state, f"trial {trial.number}"
        assert copy.params == trial.params, f"trial {trial.number}"
        assert copy.distributions == trial.distributions, f"trial {trial.number}"
        assert copy.values == trial.values, f"trial {trial.number}"
        assert copy.intermediate_values == trial.intermediate_values, f"trial {trial.number}"
        assert copy.user_attrs == trial.user_attrs, f"trial {trial.number}"
        assert copy.system_attrs == trial.system_attrs, f"trial {trial.number}"
        assert copy.datetime_start == trial.datetime_start, f"trial {trial.number}"
        assert copy.datetime_complete == trial.datetime_complete, f"trial {trial.number}"


# --- Round trips ------------------------------------------------------------------------------


def test_launched_study_round_trips_to_postgres(
    ray_cluster: None, sqlite_url: str, postgres_url: str, tmp_path: Path
) -> None:
    (tmp_path / "export_objectives.py").write_text(OBJECTIVES)
    study_file = tmp_path / "study.yaml"
    study_file.write_text(textwrap.dedent(MIXED_STUDY))
    launched = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])
    assert launched.exit_code == 0, launched.output
    export_file = tmp_path / "mixed.json"

    exported = invoke(
        "export", "mixed-outcomes", "--storage", sqlite_url, "--format", "json",
        "--out", str(export_file),
    )  # fmt: skip
    imported = invoke("import", str(export_file), "--storage", postgres_url)

    assert exported[0] == 0, exported[1]
    assert imported[0] == 0, imported[1]
    assert imported[1].startswith("Imported study 'mixed-outcomes' into postgresql+psycopg2://")
    original = optuna.load_study(study_name="mixed-outcomes", storage=sqlite_url)
    copy = optuna.load_study(study_name="mixed-outcomes", storage=postgres_url)
    states = {trial.state for trial in original.trials}
    assert {TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL} <= states
    assert copy.directions == original.directions
    assert copy.metric_names == original.metric_names == ["score"]
    assert copy.user_attrs == original.user_attrs
    assert copy.user_attrs["team"] == "vision"
    assert_same_trials(copy.trials, original.trials)
    failed = [trial for trial in copy.trials if trial.state == TrialState.FAIL]
    assert all("too small" in trial.user_attrs["fail_reason"] for trial in failed)


def test_multi_objective_round_trip(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path}/source.db"
    target = f"sqlite:///{tmp_path}/target.db"
    study = optuna.create_study(
        study_name="pareto", storage=source, directions=["maximize", "minimize"]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["accuracy", "nonzero_params"])
    study.optimize(
        lambda trial: (
            trial.suggest_float("a", 0.0, 1.0),
            trial.suggest_int("width", 8, 64, step=8),
        ),
        n_trials=4,
    )
    export_file = tmp_path / "pareto.json"

    exported = invoke("export", "pareto", "--storage", source, "--out", str(export_file))
    imported = invoke("import", str(export_file), "--storage", target, "--study", "pareto-copy")

    assert exported[0] == 0, exported[1]
    assert imported[0] == 0, imported[1]
    copy = optuna.load_study(study_name="pareto-copy", storage=target)
    assert copy.directions == study.directions
    assert copy.metric_names == ["accuracy", "nonzero_params"]
    assert_same_trials(copy.trials, study.trials)


def test_running_trial_imported_as_failed(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path}/source.db"
    target = f"sqlite:///{tmp_path}/target.db"
    study = make_study(source)
    running = study.ask({"x": FloatDistribution(-4.0, 4.0)})
    running.report(7.5, 0)
    study.enqueue_trial({"x": 1.0})
    export_file = tmp_path / "made.json"
    invoke("export", "made", "--storage", source, "--out", str(export_file))

    exit_code, output = invoke("import", str(export_file), "--storage", target)

    assert exit_code == 0, output
    copy = optuna.load_study(study_name="made", storage=target).trials
    assert_same_trials(copy[:5], study.trials[:5])
    was_running, waiting = copy[5], copy[6]
    assert was_running.state == TrialState.FAIL
    assert was_running.system_attrs[SYSTEM_ATTR_EXPORTED_STATE] == "RUNNING"
    assert "running when the study was exported" in was_running.user_attrs["fail_reason"]
    assert was_running.intermediate_values == {0: 7.5}
    assert was_running.params == running.params
    assert waiting.state == TrialState.WAITING
    assert waiting.system_attrs["fixed_params"] == {"x": 1.0}


def test_export_json_to_stdout(sqlite_url: str) -> None:
    study = make_study(sqlite_url)

    result = CliRunner().invoke(app, ["export", "made", "--storage", sqlite_url])

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format"] == "hpo-study-export"
    assert data["study"]["name"] == "made"
    assert data["study"]["user_attrs"] == {"owner": "tests"}
    assert [trial["state"] for trial in data["trials"]] == [t.state.name for t in study.trials]
    assert data["trials"][0]["intermediate_values"] == {
        str(step): value for step, value in study.trials[0].intermediate_values.items()
    }


def test_export_csv_one_row_per_trial(sqlite_url: str, tmp_path: Path) -> None:
    study = make_study(sqlite_url)
    out = tmp_path / "made.csv"

    exit_code, output = invoke(
        "export", "made", "--storage", sqlite_url, "--format", "csv", "--out", str(out)
    )

    assert exit_code == 0, output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 5
    assert list(rows[0]) == [
        "number", "state", "value", "params_x", "user_attrs_x_squared",
        "datetime_start", "datetime_complete", "duration_s", "last_step",
    ]  # fmt: skip
    for row, trial in zip(rows, study.trials, strict=True):
        assert int(row["number"]) == trial.number
        assert row["state"] == trial.state.name
        assert float(row["params_x"]) == trial.params["x"]
        assert row["last_step"] == "2"
    assert float(rows[0]["value"]) == study.trials[0].value
    assert rows[2]["value"] == ""


# --- hpo trials -------------------------------------------------------------------------------


def test_trials_json_rows(sqlite_url: str) -> None:
    study = make_study(sqlite_url)

    result = CliRunner().invoke(app, ["trials", "made", "--storage", sqlite_url, "--json"])

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["number"] for row in rows] == [0, 1, 2, 3, 4]
    assert [row["state"] for row in rows] == [t.state.name for t in study.trials]
    assert rows[0]["values"] == [study.trials[0].value]
    assert rows[2]["values"] is None
    assert rows[0]["params"] == study.trials[0].params
    assert all(row["last_step"] == 2 for row in rows)
    assert all(row["duration_s"] >= 0 for row in rows)


def test_trials_table(sqlite_url: str) -> None:
    make_study(sqlite_url)

    result = CliRunner().invoke(app, ["trials", "made", "--storage", sqlite_url])

    assert result.exit_code == 0, result.output
    assert "Trials of made in" in result.output
    for column in ("number", "state", "value", "params", "duration", "last"):
        assert column in result.output
    assert "PRUNED" in result.output
    assert "FAIL" in result.output


# --- Bad input --------------------------------------------------------------------------------


def test_import_into_existing_study(sqlite_url: str, tmp_path: Path) -> None:
    make_study(sqlite_url)
    export_file = tmp_path / "made.json"
    invoke("export", "made", "--storage", sqlite_url, "--out", str(export_file))

    exit_code, output = invoke("import", str(export_file), "--storage", sqlite_url)

    assert exit_code == 2
    assert output.startswith("error: study 'made' already exists in sqlite:///")
    assert "--study" in output.splitlines()[0]
    assert len(optuna.get_all_study_names(sqlite_url)) == 1


def test_import_missing_file(sqlite_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "nothing.json"

    exit_code, output = invoke("import", str(missing), "--storage", sqlite_url)

    assert exit_code == 2
    assert output.startswith(f"error: export file {missing} not found")
    assert "hpo export" in output.splitlines()[0]
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('{"format": "hpo-study-export",', "not JSON", id="truncated"),
        pytest.param("number,state\n0,COMPLETE\n", "not JSON", id="csv-export"),
        pytest.param('{"study_summaries": []}', '"format" must be', id="other-json"),
        pytest.param(
            '{"format": "hpo-study-export", "version": 9}', "version 9 is not supported",
            id="newer-version",
        ),
    ],
)  # fmt: skip
def test_import_unreadable_export(tmp_path: Path, text: str, expected: str) -> None:
    export_file = tmp_path / "bad.json"
    export_file.write_text(text)
    database = tmp_path / "target.db"

    exit_code, output = invoke("import", str(export_file), "--storage", f"sqlite:///{database}")

    assert exit_code == 2
    assert output.startswith(f"error: invalid export file {export_file}")
    assert expected in output.splitlines()[0]
    assert "Traceback" not in output
    assert not database.exists()


def test_import_invalid_trial_fields(sqlite_url: str, tmp_path: Path) -> None:
    make_study(sqlite_url)
    export_file = tmp_path / "made.json"
    invoke("export", "made", "--storage", sqlite_url, "--out", str(export_file))
    data = json.loads(export_file.read_text())
    data["trials"][3]["state"] = "DONE"
    del data["study"]["directions"]
    export_file.write_text(json.dumps(data))

    exit_code, output = invoke("import", str(export_file), "--storage", sqlite_url)

    assert exit_code == 2
    assert output.startswith(f"error: invalid export file {export_file}:")
    assert "study.directions: Field required" in output
    assert "trials[3].state: Input should be 'COMPLETE'" in output
    assert "'DONE'" in output


def test_import_param_outside_distribution_writes_nothing(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path}/source.db"
    target = f"sqlite:///{tmp_path}/target.db"
    make_study(source)
    export_file = tmp_path / "made.json"
    invoke("export", "made", "--storage", source, "--out", str(export_file))
    data = json.loads(export_file.read_text())
    data["trials"][4]["params"]["x"] = 99.0
    export_file.write_text(json.dumps(data))

    exit_code, output = invoke("import", str(export_file), "--storage", target)

    assert exit_code == 2
    assert output.startswith(f"error: invalid export file {export_file}: trial 4: ")
    assert "99.0" in output
    assert optuna.get_all_study_names(target) == []


def test_import_values_count_must_match_directions(tmp_path: Path) -> None:
    source = f"sqlite:///{tmp_path}/source.db"
    study = optuna.create_study(study_name="one", storage=source)
    study.add_trial(
        create_trial(params={"x": 1.0}, distributions={"x": FloatDistribution(0, 2)}, value=1.0)
    )
    export_file = tmp_path / "one.json"
    invoke("export", "one", "--storage", source, "--out", str(export_file))
    data = json.loads(export_file.read_text())
    data["trials"][0]["values"] = [1.0, 2.0]
    export_file.write_text(json.dumps(data))

    exit_code, output = invoke(
        "import", str(export_file), "--storage", source, "--study", "one-copy"
    )

    assert exit_code == 2
    assert "trial 0: values must have 1 entries, one per direction" in output.splitlines()[0]


def test_export_unknown_study(sqlite_url: str) -> None:
    make_study(sqlite_url)

    exit_code, output = invoke("export", "missing", "--storage", sqlite_url)

    assert exit_code == 2
    assert output.startswith("error: study 'missing' not found in sqlite:///")
    assert "studies there: made" in output


def test_export_out_in_missing_folder(sqlite_url: str, tmp_path: Path) -> None:
    make_study(sqlite_url)
    out = tmp_path / "no-such-folder" / "made.json"

    exit_code, output = invoke("export", "made", "--storage", sqlite_url, "--out", str(out))

    assert exit_code == 2
    assert output.startswith(f"error: cannot write --out {out}: No such file or directory")


def test_export_commands_import_neither_ray_nor_torch(sqlite_url: str, tmp_path: Path) -> None:
    make_study(sqlite_url)
    export_file = tmp_path / "made.json"
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from hpo.search._cli import app\n"
        f"url = {sqlite_url!r}\n"
        "for args in (\n"
        "    ['trials', 'made', '--storage', url],\n"
        f"    ['export', 'made', '--storage', url, '--out', {str(export_file)!r}],\n"
        f"    ['import', {str(export_file)!r}, '--storage', url, '--study', 'copy'],\n"
        "):\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))\n"
    )

    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )

    assert completed.stdout.strip() == "[]"
