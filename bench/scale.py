"""Scale: ask and tell in a study of 10,000 finished trials, and connections at 8 and 32 trials.

The large study is built fast: the first trials through `study.add_trials`, then copied in SQL
until there are 10,000, because `add_trials` costs about 9 ms a trial on a 2-core machine
(90 s for 10,000). Every timing then goes through `hpo.storage.open_storage`, the storage that
hpo's launcher uses, in a process that has not read the study before.

The connection count is the maximum number of sessions with `application_name = 'hpo'` in
`pg_stat_activity` on the launch's database, sampled every 50 ms while an hpo launch runs a
no-op objective that sleeps 1 s, with CPUs per trial small enough that all trials fit at once.
"""

from __future__ import annotations

import random
import statistics
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

from bench._common import (
    Context,
    Params,
    Result,
    Row,
    Stopwatch,
    child_main,
    connect_admin,
    format_seconds,
    read_timestamps,
    verdict,
)

BENCHMARK = "4 scale"
TRIALS = 10_000
QUICK_TRIALS = 1_000
# Trials made through `study.add_trials` before the SQL copies; each has this many
# intermediate values, as a pruned study's trials have.
SEED_TRIALS = 250
STEPS = 10
REPETITIONS = 9
# Trials that a continued hpo launch runs on top of the large study.
LAUNCH_TRIALS = 20
PARALLELISMS = (8, 32)
QUICK_PARALLELISMS = (8,)
SLEEP_S = 1.0
SAMPLE_INTERVAL_S = 0.05
# Targets: one ask and one tell at 10,000 trials, and connections held by one launch.
MAX_ASK_TELL_S = 0.050
MAX_CONNECTIONS = 4

_NOOP_STUDY = textwrap.dedent(
    """
    study:
      name: {name}
      direction: maximize
    objective:
      name: bench._objectives:noop
      args: {{steps: {steps}, timestamps: {timestamps}}}
    space:
      x: {{type: float, low: 0.0, high: 1.0}}
      y: {{type: float, low: 0.0, high: 1.0}}
    sampler: {{type: random, seed: 0}}
    budget: {{n_trials: {trials}}}
    resources: {{cpus: 1, gpus: 0, parallelism: 2}}
    """
)
_SLEEP_STUDY = textwrap.dedent(
    """
    study:
      name: connections
      direction: maximize
    objective:
      name: bench._objectives:sleep
      args: {{seconds: {seconds}}}
    space:
      x: {{type: float, low: 0.0, high: 1.0}}
    sampler: {{type: random, seed: 0}}
    budget: {{n_trials: {trials}}}
    resources: {{cpus: {cpus}, gpus: 0, parallelism: {parallelism}}}
    """
)

# Optuna 5.1's tables under each trial, with the columns copied from trial to trial.
_TRIAL_CHILD_TABLES = {
    "trial_params": ("param_name", "param_value", "distribution_json"),
    "trial_values": ("objective", "value", "value_type"),
    "trial_intermediate_values": ("step", "intermediate_value", "intermediate_value_type"),
    "trial_user_attributes": ("key", "value_json"),
    "trial_system_attributes": ("key", "value_json"),
}


def run(context: Context) -> list[Row]:
    trials = QUICK_TRIALS if context.quick else TRIALS
    url = context.create_database("scale_trials")
    built = context.run_child("bench.scale", "build", {"url": url, "trials": trials})
    timed = context.run_child("bench.scale", "ask_tell", {"url": url})
    launched = context.run_child(
        "bench.scale",
        "launch",
        {
            "url": url,
            "server_url": context.server_url,
            "timestamps": str(context.work_dir / "scale-launch.timestamps"),
        },
    )

    connections: dict[int, Result] = {}
    for parallelism in QUICK_PARALLELISMS if context.quick else PARALLELISMS:
        connections[parallelism] = context.run_child(
            "bench.scale",
            "connections",
            {
                "url": context.create_database(f"scale_connections_{parallelism}"),
                "server_url": context.server_url,
                "parallelism": parallelism,
            },
            label=f"connections-{parallelism}",
        )
    return rows(built, timed, launched, connections)


def rows(
    built: Result, timed: Result, launched: Result, connections: dict[int, Result]
) -> list[Row]:
    n = built["trials"]
    ask_tell = timed["ask_tell_s"]
    table = [
        Row(
            BENCHMARK,
            f"study of {n:,} finished trials: built in",
            format_seconds(built["build_s"]),
        ),
        Row(
            BENCHMARK,
            f"ask + tell at {n:,} trials, median of {timed['repetitions']}",
            format_seconds(ask_tell),
            f"< {MAX_ASK_TELL_S * 1000:g} ms",
            verdict(ask_tell < MAX_ASK_TELL_S, f"{ask_tell / MAX_ASK_TELL_S:.1f}x the target"),
        ),
        Row(
            BENCHMARK,
            f"first ask + tell at {n:,} trials (loads every trial into Optuna's cache)",
            format_seconds(timed["first_ask_tell_s"]),
        ),
        Row(
            BENCHMARK,
            f"ask + 2 TPE suggestions + tell at {n:,} trials, median",
            format_seconds(timed["ask_suggest_tell_s"]),
        ),
        Row(
            BENCHMARK,
            f"hpo's budget count (count_budget_trials) at {n:,} trials, median",
            format_seconds(timed["budget_count_s"]),
        ),
        Row(
            BENCHMARK,
            f"hpo launch of {launched['trials']} more no-op trials at {n:,}: overhead per trial",
            format_seconds(launched["window_s"] / launched["trials"]),
        ),
    ]
    for parallelism, result in connections.items():
        max_connections = result["max_connections"]
        table.append(
            Row(
                BENCHMARK,
                f"PostgreSQL connections of one hpo launch, {parallelism} trials at once "
                f"(max {result['max_running']} running)",
                str(max_connections),
                f"<= {MAX_CONNECTIONS}",
                verdict(
                    max_connections <= MAX_CONNECTIONS, f"{max_connections - MAX_CONNECTIONS} over"
                ),
            )
        )
    return table


# --- Child processes --------------------------------------------------------------------------


def _build(params: Params) -> Result:
    """Create the study with `params["trials"]` complete trials; return how long it took."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    total = params["trials"]
    if total % SEED_TRIALS:
        raise ValueError(f"trials must be a multiple of {SEED_TRIALS}, but got {total}")

    stopwatch = Stopwatch()
    storage = optuna.storages.RDBStorage(params["url"])
    study = optuna.create_study(storage=storage, study_name="scale", direction="maximize")
    study.add_trials(_seed_trials())
    with storage.engine.begin() as connection:
        _copy_trials(connection, study._study_id, copies=total // SEED_TRIALS - 1)
    build_s = stopwatch.elapsed()

    numbers = sorted(trial.number for trial in study.get_trials(deepcopy=False))
    if numbers != list(range(total)):
        raise RuntimeError(f"the built study has {len(numbers)} trials, not 0 to {total - 1}")
    storage.engine.dispose()
    return {"trials": total, "build_s": build_s}


def _seed_trials() -> list[Any]:
    import optuna
    from optuna.distributions import FloatDistribution

    rng = random.Random(0)
    distributions = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}
    trials = []
    for _ in range(SEED_TRIALS):
        trials.append(
            optuna.trial.create_trial(
                params={"x": rng.random(), "y": rng.random()},
                distributions=distributions,
                value=rng.random(),
                intermediate_values={step: rng.random() for step in range(STEPS)},
                user_attrs={"worker_host": "bench", "duration_s": 1.0},
            )
        )
    return trials


def _copy_trials(connection: Any, study_id: int, *, copies: int) -> None:
    """Copy the study's trials `copies` times, numbered on after the originals, in SQL."""
    import sqlalchemy

    connection.execute(
        sqlalchemy.text(
            "INSERT INTO trials (number, study_id, state, datetime_start, datetime_complete) "
            "SELECT t.number + k * :n, t.study_id, t.state, t.datetime_start, "
            "t.datetime_complete FROM trials t CROSS JOIN generate_series(1, :copies) AS k "
            "WHERE t.study_id = :study"
        ),
        {"n": SEED_TRIALS, "copies": copies, "study": study_id},
    )
    for table, columns in _TRIAL_CHILD_TABLES.items():
        listed = ", ".join(columns)
        selected = ", ".join(f"c.{column}" for column in columns)
        connection.execute(
            sqlalchemy.text(
                f"INSERT INTO {table} (trial_id, {listed}) "
                f"SELECT copy.trial_id, {selected} FROM trials copy "
                "JOIN trials original ON original.study_id = copy.study_id "
                "AND original.number = copy.number % :n "
                f"JOIN {table} c ON c.trial_id = original.trial_id "
                "WHERE copy.study_id = :study AND copy.number >= :n"
            ),
            {"n": SEED_TRIALS, "study": study_id},
        )


def _ask_tell(params: Params) -> Result:
    """Time ask + tell and related calls on the large study through hpo's storage."""
    import optuna

    from hpo.storage import count_budget_trials, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(params["url"])
    study = optuna.load_study(study_name="scale", storage=storage)

    def ask_tell() -> None:
        trial = study.ask()
        study.tell(trial, 0.5)

    def ask_suggest_tell() -> None:
        trial = study.ask()
        trial.suggest_float("x", 0.0, 1.0)
        trial.suggest_float("y", 0.0, 1.0)
        study.tell(trial, 0.5)

    first = _time_once(ask_tell)
    return {
        "repetitions": REPETITIONS,
        "first_ask_tell_s": first,
        "ask_tell_s": _median_time(ask_tell),
        "ask_suggest_tell_s": _median_time(ask_suggest_tell),
        "budget_count_s": _median_time(lambda: count_budget_trials(study)),
    }


def _time_once(call: Any) -> float:
    stopwatch = Stopwatch()
    call()
    return stopwatch.elapsed()


def _median_time(call: Any) -> float:
    return statistics.median(_time_once(call) for _ in range(REPETITIONS))


def _launch(params: Params) -> Result:
    """Continue the large study with a few no-op trials through hpo's launcher."""
    from sqlalchemy.engine import make_url

    from hpo.search import launch, parse_spec

    # Counted in SQL, so that this process reads the study only through the launcher.
    admin = connect_admin(params["server_url"], make_url(params["url"]).database)
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM trials")
            existing = cursor.fetchone()[0]
    finally:
        admin.close()

    timestamps = Path(params["timestamps"])
    spec = parse_spec(
        _NOOP_STUDY.format(
            name="scale", steps=STEPS, timestamps=timestamps, trials=existing + LAUNCH_TRIALS
        )
    )
    stopwatch = Stopwatch()
    result = launch(spec, storage_url=params["url"])
    total_s = stopwatch.elapsed()
    first_start, last_end, trials = read_timestamps(timestamps)
    if trials != result.ran:
        raise RuntimeError(f"the launch ran {result.ran} trials, but {trials} wrote timestamps")
    return {"trials": trials, "window_s": last_end - first_start, "total_s": total_s}


def _connections(params: Params) -> Result:
    """Run an hpo launch while sampling its connections and running trials."""
    from sqlalchemy.engine import make_url

    from hpo.search import launch, parse_spec

    parallelism = params["parallelism"]
    database = make_url(params["url"]).database
    spec = parse_spec(
        _SLEEP_STUDY.format(
            seconds=SLEEP_S,
            trials=2 * parallelism,
            # All trials must run at once even on a 2-CPU cluster, so they share 1.5 CPUs.
            cpus=round(1.5 / parallelism, 3),
            parallelism=parallelism,
        )
    )

    samples = {"connections": 0, "running": 0}
    done = threading.Event()

    def sample() -> None:
        admin = connect_admin(params["server_url"], database)
        try:
            with admin.cursor() as cursor:
                while not done.is_set():
                    cursor.execute(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = %s AND application_name = 'hpo'",
                        (database,),
                    )
                    samples["connections"] = max(samples["connections"], cursor.fetchone()[0])
                    cursor.execute(
                        "SELECT to_regclass('trials') IS NOT NULL",
                    )
                    if cursor.fetchone()[0]:
                        cursor.execute("SELECT count(*) FROM trials WHERE state = 'RUNNING'")
                        samples["running"] = max(samples["running"], cursor.fetchone()[0])
                    time.sleep(SAMPLE_INTERVAL_S)
        finally:
            admin.close()

    sampler = threading.Thread(target=sample, name="connection-sampler", daemon=True)
    sampler.start()
    try:
        result = launch(spec, storage_url=params["url"])
    finally:
        done.set()
        sampler.join()

    return {
        "parallelism": parallelism,
        "trials": result.ran,
        "max_connections": samples["connections"],
        "max_running": samples["running"],
    }


if __name__ == "__main__":
    child_main(
        {"build": _build, "ask_tell": _ask_tell, "launch": _launch, "connections": _connections}
    )
