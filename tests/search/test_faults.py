"""Faults during a study: killed launchers, database restarts, dropped connections, Ctrl-C.

Launchers here are real `hpo launch` processes that join the session's Ray cluster, killed
with real signals; the database is the machine's PostgreSQL or a throwaway cluster that a test
restarts.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy.exc
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from hpo.search._cli import app

OBJECTIVES = textwrap.dedent(
    """
    import time


    def slow(trial, seconds=0.3, steps=4):
        x = trial.suggest_float("x", 0.0, 1.0)
        for step in range(steps):
            time.sleep(seconds)
            trial.report(x * step, step)
        return x
    """
)

# Short heartbeats, so a dead launcher's trials go stale within seconds.
STUDY = """
study:
  name: {name}
  direction: maximize
  heartbeat_interval: 1
  grace_period: 3
objective:
  name: fault_objectives:slow
  args: {{seconds: {seconds}, steps: 4}}
pruner:
  type: none
budget:
  n_trials: {n_trials}
  max_retries: 1
resources:
  cpus: {cpus}
  parallelism: {parallelism}
"""

HPO = str(Path(sys.executable).parent / "hpo")
SECRET = "s3cret-Pw"


def write_study(
    folder: Path,
    *,
    name: str,
    n_trials: int,
    seconds: float = 0.3,
    parallelism: int = 2,
    cpus: float = 1,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fault_objectives.py").write_text(OBJECTIVES)
    path = folder / "study.yaml"
    path.write_text(
        STUDY.format(
            name=name, n_trials=n_trials, seconds=seconds, parallelism=parallelism, cpus=cpus
        )
    )
    return path


def with_password(url: str) -> str:
    """Add a password to a trust-authenticated URL: the server ignores it, outputs must hide it."""
    return make_url(url).set(password=SECRET).render_as_string(hide_password=False)


def ray_address() -> str:
    import ray

    return str(ray.get_runtime_context().gcs_address)


def start_launcher(study_file: Path, storage_url: str, *extra: str) -> subprocess.Popen[str]:
    """Start `hpo launch` as its own process, joined to the session's Ray cluster."""
    return subprocess.Popen(
        [
            HPO,
            "launch",
            str(study_file),
            "--storage",
            storage_url,
            "--ray-address",
            ray_address(),
            *extra,
        ],
        cwd=study_file.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def trials(storage_url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return optuna.load_study(study_name=name, storage=storage_url).get_trials(deepcopy=False)
    except KeyError:
        return []
    except sqlalchemy.exc.IntegrityError:
        # Plain Optuna, here in the test, raced the launcher to create its tables.
        return []


def wait_for(condition: Callable[[], bool], *, timeout_s: float = 60, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")


def count_states(found: list[optuna.trial.FrozenTrial]) -> dict[TrialState, int]:
    counts = dict.fromkeys(TrialState, 0)
    for trial in found:
        counts[trial.state] += 1
    return counts


def budget_count(found: list[optuna.trial.FrozenTrial]) -> int:
    """Trials that use up the budget: all but the failures that a retry replaced."""
    retries = sum(1 for trial in found if "failed_trial" in trial.system_attrs)
    return len(found) - retries


@pytest.fixture
def launcher_processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        # communicate() also closes the output pipe, which pytest would report as leaked.
        process.communicate(timeout=30)


def test_killed_launcher_recovered_from_other_folder(
    ray_cluster: None,
    postgres_url: str,
    tmp_path: Path,
    launcher_processes: list[subprocess.Popen[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = with_password(postgres_url)
    first_folder = tmp_path / "machine-a"
    study_file = write_study(first_folder, name="killed", n_trials=8, seconds=0.4)
    launcher = start_launcher(study_file, url)
    launcher_processes.append(launcher)

    def some_done_some_running() -> bool:
        counts = count_states(trials(postgres_url, "killed"))
        return counts[TrialState.COMPLETE] >= 1 and counts[TrialState.RUNNING] >= 1

    wait_for(some_done_some_running, what="a finished and a running trial")
    launcher.send_signal(signal.SIGKILL)
    launcher.wait(timeout=30)
    stuck = [t.number for t in trials(postgres_url, "killed") if t.state == TrialState.RUNNING]
    assert stuck

    second_folder = tmp_path / "machine-b"
    second_folder.mkdir()
    shutil.copy(first_folder / "fault_objectives.py", second_folder)
    shutil.copy(study_file, second_folder)
    monkeypatch.chdir(second_folder)
    result = CliRunner().invoke(app, ["launch", "study.yaml", "--storage", url])

    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    final = trials(postgres_url, "killed")
    counts = count_states(final)
    assert counts[TrialState.RUNNING] == 0
    assert counts[TrialState.WAITING] == 0
    assert budget_count(final) == 8
    for number in stuck:
        assert final[number].state == TrialState.FAIL
        assert "heartbeats" in final[number].user_attrs["fail_reason"]
    retried = [
        trial.system_attrs["failed_trial"]
        for trial in final
        if "failed_trial" in trial.system_attrs
    ]
    assert sorted(retried) == sorted(stuck)
    assert len(retried) == len(set(retried))


def test_two_launchers_share_budget(
    ray_cluster: None,
    postgres_url: str,
    tmp_path: Path,
    launcher_processes: list[subprocess.Popen[str]],
) -> None:
    study_file = write_study(tmp_path, name="shared", n_trials=7, seconds=0.05, cpus=0.5)
    first = start_launcher(study_file, postgres_url)
    second = start_launcher(study_file, postgres_url)
    launcher_processes.extend([first, second])

    outputs = [process.communicate(timeout=240)[0] for process in (first, second)]

    assert first.returncode == 0, outputs[0]
    assert second.returncode == 0, outputs[1]
    final = trials(postgres_url, "shared")
    assert len(final) == 7
    assert all(trial.state == TrialState.COMPLETE for trial in final)


def test_connections_bounded_with_eight_parallel_trials(
    ray_cluster: None,
    postgres_url: str,
    tmp_path: Path,
    launcher_processes: list[subprocess.Popen[str]],
) -> None:
    import psycopg2

    from hpo.storage import MAX_CONNECTIONS

    database = make_url(postgres_url).database
    study_file = write_study(
        tmp_path, name="wide", n_trials=16, seconds=0.5, parallelism=8, cpus=0.25
    )
    launcher = start_launcher(study_file, postgres_url)
    launcher_processes.append(launcher)
    admin = psycopg2.connect(host="127.0.0.1", port=make_url(postgres_url).port, user="postgres")
    admin.autocommit = True
    max_connections = 0
    max_running = 0
    try:
        while launcher.poll() is None:
            with admin.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = %s AND application_name = 'hpo'",
                    (database,),
                )
                max_connections = max(max_connections, cursor.fetchone()[0])
            running = count_states(trials(postgres_url, "wide"))[TrialState.RUNNING]
            max_running = max(max_running, running)
            time.sleep(0.05)
    finally:
        admin.close()

    output = launcher.communicate()[0]
    assert launcher.returncode == 0, output
    assert max_running == 8
    assert 1 <= max_connections <= MAX_CONNECTIONS
    assert MAX_CONNECTIONS == 4


def test_terminated_connections_cost_only_retries(
    ray_cluster: None, postgres_url: str, tmp_path: Path
) -> None:
    import psycopg2

    database = make_url(postgres_url).database
    study_file = write_study(tmp_path, name="terminated", n_trials=6, seconds=0.2)
    outcome: dict[str, object] = {}

    def run() -> None:
        outcome["result"] = CliRunner().invoke(
            app, ["launch", str(study_file), "--storage", postgres_url]
        )

    launcher = threading.Thread(target=run)
    launcher.start()
    admin = psycopg2.connect(host="127.0.0.1", port=make_url(postgres_url).port, user="postgres")
    admin.autocommit = True
    terminated = 0
    try:
        wait_for(
            lambda: (
                not launcher.is_alive()
                or count_states(trials(postgres_url, "terminated"))[TrialState.RUNNING] >= 1
            ),
            what="a running trial",
        )
        while launcher.is_alive():
            with admin.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND application_name = 'hpo'",
                    (database,),
                )
                terminated += sum(1 for (done,) in cursor.fetchall() if done)
            time.sleep(0.3)
    finally:
        admin.close()
        launcher.join(timeout=240)

    result = outcome["result"]
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert terminated >= 1
    final = trials(postgres_url, "terminated")
    assert budget_count(final) == 6
    assert count_states(final)[TrialState.RUNNING] == 0


def test_database_restart_during_study(
    ray_cluster: None,
    throwaway_postgres: object,
    tmp_path: Path,
    launcher_processes: list[subprocess.Popen[str]],
) -> None:
    server = throwaway_postgres
    plain_url = f"{server.url}/postgres"  # type: ignore[attr-defined]
    study_file = write_study(tmp_path, name="restarted", n_trials=8, seconds=0.3)
    launcher = start_launcher(study_file, with_password(plain_url))
    launcher_processes.append(launcher)
    wait_for(
        lambda: count_states(trials(plain_url, "restarted"))[TrialState.COMPLETE] >= 2,
        what="two complete trials",
    )

    # The server stays down until the launcher has logged a retry, so the outage is seen.
    server.stop()  # type: ignore[attr-defined]
    assert launcher.stdout is not None
    seen: list[str] = []
    for line in launcher.stdout:
        seen.append(line)
        if "retrying in" in line:
            break
    server.start()  # type: ignore[attr-defined]
    rest = launcher.communicate(timeout=240)[0]
    output = "".join(seen) + rest

    assert launcher.returncode == 0, output
    assert "retrying in" in output
    assert SECRET not in output
    final = trials(plain_url, "restarted")
    assert budget_count(final) == 8
    assert count_states(final)[TrialState.RUNNING] == 0


def test_one_sigint_finishes_running_trials(
    ray_cluster: None,
    sqlite_url: str,
    tmp_path: Path,
    launcher_processes: list[subprocess.Popen[str]],
) -> None:
    study_file = write_study(tmp_path, name="interrupted", n_trials=6, seconds=0.5)
    launcher = start_launcher(study_file, sqlite_url)
    launcher_processes.append(launcher)
    wait_for(
        lambda: count_states(trials(sqlite_url, "interrupted"))[TrialState.RUNNING] == 2,
        what="two running trials",
    )

    launcher.send_signal(signal.SIGINT)
    output = launcher.communicate(timeout=120)[0]

    assert launcher.returncode == 130, output
    assert "Ctrl-C" in output
    final = trials(sqlite_url, "interrupted")
    assert len(final) == 2
    assert all(trial.state == TrialState.COMPLETE for trial in final)


def test_two_sigints_cancel_and_continue(
    ray_cluster: None,
    sqlite_url: str,
    tmp_path: Path,
    launcher_processes: list[subprocess.Popen[str]],
) -> None:
    study_file = write_study(tmp_path, name="cancelled", n_trials=5, seconds=2.0)
    launcher = start_launcher(study_file, sqlite_url)
    launcher_processes.append(launcher)
    wait_for(
        lambda: count_states(trials(sqlite_url, "cancelled"))[TrialState.RUNNING] == 2,
        what="two running trials",
    )

    launcher.send_signal(signal.SIGINT)
    time.sleep(0.5)
    launcher.send_signal(signal.SIGINT)
    output = launcher.communicate(timeout=120)[0]

    assert launcher.returncode == 130, output
    cancelled = trials(sqlite_url, "cancelled")
    counts = count_states(cancelled)
    assert counts[TrialState.FAIL] == 2
    assert counts[TrialState.WAITING] == 2
    assert counts[TrialState.RUNNING] == 0
    for trial in cancelled:
        if trial.state == TrialState.FAIL:
            assert "cancelled by a second Ctrl-C" in trial.user_attrs["fail_reason"]
    command = output.strip().splitlines()[-1].strip()
    assert command.startswith("hpo launch ")

    # Run the printed command as a user would, in a shell, with the venv's hpo on the PATH.
    continued = subprocess.run(
        f"{command} --ray-address {ray_address()}",
        shell=True,
        cwd=study_file.parent,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "PATH": f"{Path(HPO).parent}:{os.environ['PATH']}"},
    )

    assert continued.returncode == 0, continued.stdout + continued.stderr
    final = trials(sqlite_url, "cancelled")
    assert budget_count(final) == 5
    assert count_states(final)[TrialState.RUNNING] == 0
    assert count_states(final)[TrialState.WAITING] == 0
    assert count_states(final)[TrialState.COMPLETE] == 5


def test_changed_choices_rejected_before_writing(
    ray_cluster: None, sqlite_url: str, tmp_path: Path
) -> None:
    study_file = write_study(tmp_path, name="space", n_trials=2, seconds=0.01)
    text = study_file.read_text().replace(
        "pruner:",
        "space:\n  kind: {type: categorical, choices: [a, b]}\n"
        "  width: {type: int, low: 1, high: 4}\npruner:",
    )
    study_file.write_text(text)
    first = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])
    assert first.exit_code == 0, first.output
    stored = optuna.load_study(study_name="space", storage=sqlite_url)
    space_before = stored._storage.get_study_system_attrs(stored._study_id)["hpo:space"]

    study_file.write_text(text.replace("choices: [a, b]", "choices: [a, b, c]"))
    changed = CliRunner().invoke(
        app, ["launch", str(study_file), "--storage", sqlite_url, "--n-trials", "4"]
    )
    forced = CliRunner().invoke(
        app,
        [
            "launch",
            str(study_file),
            "--storage",
            sqlite_url,
            "--n-trials",
            "4",
            "--allow-space-change",
        ],
    )

    assert changed.exit_code == 2
    first_line = changed.output.splitlines()[0]
    assert first_line.startswith("error: the search space of study 'space' differs")
    assert "space.kind: changed from choices ['a', 'b'] to choices ['a', 'b', 'c']" in (
        changed.output
    )
    assert forced.exit_code == 2
    assert "Optuna cannot change them within a study" in forced.output.splitlines()[0]
    assert len(trials(sqlite_url, "space")) == 2
    reloaded = optuna.load_study(study_name="space", storage=sqlite_url)
    space_after = reloaded._storage.get_study_system_attrs(reloaded._study_id)["hpo:space"]
    assert space_after == space_before


def test_allowed_range_change_continues(
    ray_cluster: None, sqlite_url: str, tmp_path: Path
) -> None:
    study_file = write_study(tmp_path, name="widened", n_trials=2, seconds=0.01)
    text = study_file.read_text().replace(
        "pruner:", "space:\n  width: {type: int, low: 1, high: 4}\npruner:"
    )
    study_file.write_text(text)
    first = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])
    assert first.exit_code == 0, first.output

    study_file.write_text(text.replace("high: 4", "high: 8"))
    refused = CliRunner().invoke(
        app, ["launch", str(study_file), "--storage", sqlite_url, "--n-trials", "4"]
    )
    allowed = CliRunner().invoke(
        app,
        [
            "launch",
            str(study_file),
            "--storage",
            sqlite_url,
            "--n-trials",
            "4",
            "--allow-space-change",
        ],
    )

    assert refused.exit_code == 2
    assert "space.width: changed from int [1, 4] to int [1, 8]" in refused.output
    assert allowed.exit_code == 0, allowed.output
    assert len(trials(sqlite_url, "widened")) == 4
