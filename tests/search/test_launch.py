"""`hpo launch` against a real local Ray cluster and real SQLite and PostgreSQL databases.

The objectives here are small user objectives written into a temporary folder next to the
study file, as a user's own module would be, so the workers import them the way they import a
user's code.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from hpo.search._cli import app

OBJECTIVES = textwrap.dedent(
    """
    import os
    import signal
    import time
    from pathlib import Path

    import optuna


    def quadratic(trial):
        x = trial.suggest_float("x", -10.0, 10.0)
        for step in range(3):
            trial.report((x - 2) ** 2 + 3 - step, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return (x - 2) ** 2


    def from_space(trial, offset=0.0):
        x = trial.params["x"]
        kind = trial.suggest_categorical("kind", ["a", "b"])
        trial.set_user_attr("kind_seen", kind)
        return x + offset


    def fails_for_negative(trial):
        x = trial.suggest_float("x", -1.0, 1.0)
        if x < 0:
            raise ValueError(f"negative x={x}")
        return x


    def climbs_or_sinks(trial):
        # Half the trials climb and half sink, so the median pruner stops the sinking ones.
        good = trial.number % 2 == 0
        for step in range(6):
            trial.report(float(step if good else -step), step)
            if trial.should_prune():
                raise optuna.TrialPruned(f"stopped at step {step}")
        return float(step if good else -step)


    def dies_once(trial, marker):
        # The first trial kills its own worker process, as an out-of-memory kill would.
        x = trial.suggest_float("x", 0.0, 1.0)
        if not Path(marker).exists():
            Path(marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return x


    def sleeps_when_told(trial, seconds):
        slow = trial.suggest_categorical("slow", [True, False])
        if slow:
            time.sleep(seconds)
        return 1.0


    def waits_for_flag(trial, flag):
        trial.report(0.5, 0)
        deadline = time.monotonic() + 60
        while not Path(flag).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return 1.0
    """
)


def write_study(folder: Path, body: str) -> Path:
    (folder / "user_objectives.py").write_text(OBJECTIVES)
    path = folder / "study.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess[str] | object:
    return CliRunner().invoke(app, list(args))


def load(storage_url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage_url)


QUADRATIC_STUDY = """
    study:
      name: quadratic
      direction: minimize
    objective:
      name: user_objectives:quadratic
    sampler:
      type: random
      seed: 1
    budget:
      n_trials: 6
    resources:
      cpus: 1
      parallelism: 2
"""


def test_launch_runs_budget_in_parallel(
    ray_cluster: None, sqlite_url: str, tmp_path: Path
) -> None:
    study_file = write_study(tmp_path, QUADRATIC_STUDY)

    result = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])

    assert result.exit_code == 0, result.output
    study = load(sqlite_url, "quadratic")
    states = [trial.state for trial in study.trials]
    assert len(states) == 6
    assert TrialState.RUNNING not in states
    assert all(state in (TrialState.COMPLETE, TrialState.PRUNED) for state in states)
    assert all("worker_host" in trial.user_attrs for trial in study.trials)
    assert "database is locked" not in result.output


def test_relaunch_runs_only_remaining_budget(
    ray_cluster: None, sqlite_url: str, tmp_path: Path
) -> None:
    study_file = write_study(tmp_path, QUADRATIC_STUDY)
    first = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])
    assert first.exit_code == 0, first.output

    again = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])
    assert again.exit_code == 0, again.output
    assert "nothing to run" in again.output
    assert len(load(sqlite_url, "quadratic").trials) == 6

    more = CliRunner().invoke(
        app, ["launch", str(study_file), "--storage", sqlite_url, "--n-trials", "11"]
    )
    assert more.exit_code == 0, more.output
    assert len(load(sqlite_url, "quadratic").trials) == 11


def test_space_and_define_by_run_mix(ray_cluster: None, sqlite_url: str, tmp_path: Path) -> None:
    study_file = write_study(
        tmp_path,
        """
        study:
          name: mixed
          direction: maximize
        objective:
          name: user_objectives:from_space
          args: {offset: 100.0}
        space:
          x: {type: int, low: 1, high: 3}
        budget:
          n_trials: 3
        """,
    )

    result = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])

    assert result.exit_code == 0, result.output
    for trial in load(sqlite_url, "mixed").trials:
        assert trial.state == TrialState.COMPLETE
        assert set(trial.params) == {"x", "kind"}
        assert trial.value == trial.params["x"] + 100.0
        assert trial.user_attrs["kind_seen"] == trial.params["kind"]


def test_objective_errors_fail_only_their_trials(
    ray_cluster: None, sqlite_url: str, tmp_path: Path
) -> None:
    study_file = write_study(
        tmp_path,
        """
        study:
          name: sometimes-fails
          direction: maximize
        objective:
          name: user_objectives:fails_for_negative
        sampler: {type: random, seed: 3}
        budget:
          n_trials: 10
        resources:
          parallelism: 2
        """,
    )

    result = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])

    assert result.exit_code == 0, result.output
    trials = load(sqlite_url, "sometimes-fails").trials
    assert len(trials) == 10
    failed = [trial for trial in trials if trial.state == TrialState.FAIL]
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    assert failed, "the seed should give some negative x"
    assert complete, "the seed should give some positive x"
    for trial in failed:
        assert trial.params["x"] < 0
        assert "ValueError: negative x=" in trial.user_attrs["fail_reason"]
    for trial in complete:
        assert trial.params["x"] >= 0


def test_median_pruner_prunes_sinking_trials(
    ray_cluster: None, sqlite_url: str, tmp_path: Path
) -> None:
    study_file = write_study(
        tmp_path,
        """
        study:
          name: pruning
          direction: maximize
        objective:
          name: user_objectives:climbs_or_sinks
        pruner:
          type: median
          n_startup_trials: 2
          n_warmup_steps: 1
        budget:
          n_trials: 8
        """,
    )

    result = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])

    assert result.exit_code == 0, result.output
    trials = load(sqlite_url, "pruning").trials
    pruned = [trial for trial in trials if trial.state == TrialState.PRUNED]
    assert pruned
    for trial in pruned:
        assert trial.number % 2 == 1
        last_step = max(trial.intermediate_values)
        assert 1 <= last_step < 5
        assert trial.value == trial.intermediate_values[last_step]


def test_intermediate_values_visible_while_running(
    ray_cluster: None, sqlite_url: str, tmp_path: Path
) -> None:
    flag = tmp_path / "finish"
    study_file = write_study(
        tmp_path,
        f"""
        study:
          name: live
          direction: maximize
        objective:
          name: user_objectives:waits_for_flag
          args: {{flag: "{flag}"}}
        budget:
          n_trials: 2
        resources:
          parallelism: 2
        """,
    )
    outcome: dict[str, object] = {}

    def run() -> None:
        outcome["result"] = CliRunner().invoke(
            app, ["launch", str(study_file), "--storage", sqlite_url]
        )

    launcher = threading.Thread(target=run)
    launcher.start()
    try:
        seen: list[optuna.trial.FrozenTrial] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(seen) < 2:
            if Path(sqlite_url.removeprefix("sqlite:///")).exists():
                try:
                    trials = load(sqlite_url, "live").trials
                except KeyError:
                    trials = []
                seen = [
                    t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values
                ]
            time.sleep(0.1)
    finally:
        flag.touch()
        launcher.join(timeout=120)

    assert len(seen) == 2
    assert all(trial.intermediate_values == {0: 0.5} for trial in seen)
    result = outcome["result"]
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert all(t.state == TrialState.COMPLETE for t in load(sqlite_url, "live").trials)


def test_launch_on_postgres_is_listed_by_optuna(
    ray_cluster: None, postgres_url: str, tmp_path: Path
) -> None:
    study_file = write_study(tmp_path, QUADRATIC_STUDY)

    result = CliRunner().invoke(app, ["launch", str(study_file), "--storage", postgres_url])

    assert result.exit_code == 0, result.output
    assert len(load(postgres_url, "quadratic").trials) == 6
    optuna_cli = shutil.which("optuna", path=str(Path(sys.executable).parent))
    assert optuna_cli is not None
    listed = subprocess.run(
        [optuna_cli, "studies", "--storage", postgres_url, "-f", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"quadratic"' in listed.stdout
    assert '"n_trials": 6' in listed.stdout


def test_gpus_without_gpu_in_cluster(ray_cluster: None, sqlite_url: str, tmp_path: Path) -> None:
    study_file = write_study(
        tmp_path, QUADRATIC_STUDY.replace("cpus: 1", "cpus: 1\n      gpus: 0.5")
    )

    result = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])

    assert result.exit_code == 1
    assert result.output.startswith("error: each trial needs 0.5 GPU, but the Ray cluster has 0")


def test_killed_worker_fails_trial_and_retries(
    ray_cluster: None, sqlite_url: str, tmp_path: Path
) -> None:
    marker = tmp_path / "died"
    study_file = write_study(
        tmp_path,
        f"""
        study:
          name: worker-dies
        objective:
          name: user_objectives:dies_once
          args: {{marker: "{marker}"}}
        budget:
          n_trials: 3
          max_retries: 1
        """,
    )

    result = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])

    assert result.exit_code == 0, result.output
    trials = load(sqlite_url, "worker-dies").trials
    assert [trial.state for trial in trials] == [
        TrialState.FAIL,
        TrialState.COMPLETE,
        TrialState.COMPLETE,
        TrialState.COMPLETE,
    ]
    died, retry = trials[0], trials[1]
    assert "the worker process died" in died.user_attrs["fail_reason"]
    assert retry.system_attrs["failed_trial"] == 0
    assert retry.user_attrs["retry_of"] == 0
    assert retry.params == died.params


def test_trial_past_time_limit_fails(ray_cluster: None, sqlite_url: str, tmp_path: Path) -> None:
    study_file = write_study(
        tmp_path,
        """
        study:
          name: slow-trials
        objective:
          name: user_objectives:sleeps_when_told
          args: {seconds: 60}
        sampler: {type: grid}
        space:
          slow: {type: categorical, choices: [true, false]}
        budget:
          n_trials: 2
          trial_timeout: 1s
        resources:
          parallelism: 2
        """,
    )

    result = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])

    assert result.exit_code == 0, result.output
    trials = {trial.params["slow"]: trial for trial in load(sqlite_url, "slow-trials").trials}
    assert trials[True].state == TrialState.FAIL
    assert "timed out after 1 s" in trials[True].user_attrs["fail_reason"]
    assert trials[False].state == TrialState.COMPLETE


def test_status_and_best_after_launch(ray_cluster: None, sqlite_url: str, tmp_path: Path) -> None:
    study_file = write_study(tmp_path, QUADRATIC_STUDY)
    launched = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])
    assert launched.exit_code == 0, launched.output
    study = load(sqlite_url, "quadratic")

    status = CliRunner().invoke(app, ["status", "--storage", sqlite_url, "--json"])
    best = CliRunner().invoke(
        app, ["best", "quadratic", "--storage", sqlite_url, "--format", "json"]
    )

    assert status.exit_code == 0, status.output
    (row,) = json.loads(status.stdout)
    assert row["study"] == "quadratic"
    assert row["complete"] + row["pruned"] == 6
    assert row["running"] == 0
    assert row["best_value"] == study.best_value
    assert best.exit_code == 0, best.output
    assert json.loads(best.stdout) == {
        "study": "quadratic",
        "trial": study.best_trial.number,
        "value": study.best_value,
        "params": study.best_params,
    }


def test_builtin_cnn_on_digits(ray_cluster: None, sqlite_url: str, tmp_path: Path) -> None:
    study_file = tmp_path / "digits.yaml"
    study_file.write_text(
        textwrap.dedent(
            """
            study:
              name: digits-small
              direction: maximize
            objective:
              name: cnn
              args: {dataset: digits, epochs: 3, width: 8}
            space:
              lr: {type: float, low: 3.0e-3, high: 1.0e-2, log: true}
              prune_amount: {type: float, low: 0.0, high: 0.5}
            budget:
              n_trials: 4
            resources:
              parallelism: 2
            """
        )
    )

    result = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])

    assert result.exit_code == 0, result.output
    trials = load(sqlite_url, "digits-small").trials
    assert len(trials) == 4
    for trial in trials:
        assert trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
        assert set(trial.intermediate_values) <= {0, 1, 2}
    complete = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    assert complete
    for trial in complete:
        # Three short epochs are enough to beat chance (0.1) by far, not to score well.
        assert 0.25 < trial.value <= 1.0
        assert trial.user_attrs["sparsity"] == pytest.approx(
            trial.params["prune_amount"], abs=0.01
        )
        assert trial.user_attrs["nonzero_params"] > 0
        assert trial.user_attrs["model_size_bytes"] > 0
        assert trial.user_attrs["inference_ms"] > 0
        assert trial.user_attrs["epochs_run"] == 3
