"""Where an hpo launch spends its time per trial: a breakdown of the launcher's main loop.

    .venv/bin/python -m bench.profile_launcher [--trials 200] [--postgres URL]

Runs the overhead benchmark's hpo case (a no-op objective reporting 10 steps, 2 trials at
once) in this process, with wall-clock timers around the launcher's steps and the Optuna calls
they make, and counts the SQL statements sent. Timers nest: a step's time includes the calls
listed under it. Unlike cProfile, the timers cost little, so the total stays close to an
untimed run.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import Stopwatch, connect_admin, read_timestamps, server_url_from_env

# (module, attribute path, label, indent): what gets a timer, in the order it is printed.
_TIMED = (
    ("hpo.search._launcher", "_TrialRunner._start_trial", "start a trial", 0),
    ("hpo.storage", "study_lock", "study lock (advisory lock, own connection)", 1),
    ("hpo.search._launcher", "_may_ask", "budget check (_may_ask)", 1),
    ("optuna.study", "Study.ask", "Study.ask", 1),
    ("hpo.storage._liveness", "Heartbeat.beat", "heartbeats (Heartbeat.beat)", 1),
    ("hpo.search._space", "suggest_params", "suggest_params (TPE)", 1),
    ("hpo.search._launcher", "_TrialRunner._acquire_worker", "acquire a worker", 1),
    ("hpo.search._launcher", "_TrialRunner._handle", "handle worker events", 0),
    ("hpo.search._launcher", "_report", "report + should_prune", 1),
    ("optuna.trial", "Trial.report", "Trial.report", 2),
    ("optuna.trial", "Trial.should_prune", "Trial.should_prune", 2),
    ("hpo.search._launcher", "_TrialRunner._finish", "finish a trial", 1),
    ("optuna.study", "Study.tell", "Study.tell", 2),
    ("hpo.search._launcher", "_log_completed", "log the trial (reads best_trial)", 2),
    ("optuna.trial", "Trial.set_user_attr", "Trial.set_user_attr (all)", 1),
    ("hpo.search._launcher", "_TrialRunner._refresh_counts", "progress counts", 0),
    ("ray", "wait", "ray.wait for worker events", 0),
)

_STUDY = """
study:
  name: profile
  direction: maximize
objective:
  name: bench._objectives:noop
  args: {{steps: 10, timestamps: {timestamps}}}
space:
  x: {{type: float, low: 0.0, high: 1.0}}
sampler: {{type: tpe, seed: 0}}
pruner: {{type: median}}
budget: {{n_trials: {trials}}}
resources: {{cpus: 1, gpus: 0, parallelism: 2}}
"""


class _Timers:
    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self._main = threading.get_ident()

    def wrap(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != self._main:
                return function(*args, **kwargs)
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.calls[label] = self.calls.get(label, 0) + 1
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start

        return timed

    def install(self) -> None:
        for module_name, path, label, _ in _TIMED:
            owner: Any = importlib.import_module(module_name)
            *parents, name = path.split(".")
            for parent in parents:
                owner = getattr(owner, parent)
            original = getattr(owner, name)
            wrapped = self.wrap(label, original)
            if module_name == "hpo.storage" and name == "study_lock":
                # A context manager: time the whole block's entry and exit, not only the call.
                wrapped = _timed_context(self, label, original)
            setattr(owner, name, wrapped)


def _timed_context(timers: _Timers, label: str, factory: Callable[..., Any]) -> Callable[..., Any]:
    from contextlib import contextmanager

    @contextmanager
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        manager = factory(*args, **kwargs)
        manager.__enter__()
        entered = time.perf_counter() - start
        try:
            yield
        finally:
            start = time.perf_counter()
            manager.__exit__(None, None, None)
            spent = entered + time.perf_counter() - start
            timers.calls[label] = timers.calls.get(label, 0) + 1
            timers.seconds[label] = timers.seconds.get(label, 0.0) + spent

    return timed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_launcher")
    parser.add_argument("--trials", type=int, default=200, help="trials to run (default 200)")
    parser.add_argument("--postgres", metavar="URL", help="PostgreSQL server URL, no database")
    args = parser.parse_args(argv)

    import sqlalchemy
    from psycopg2 import sql

    from hpo.search import launch, parse_spec

    server_url = server_url_from_env(args.postgres)
    database = f"hpo_bench_profile_{secrets.token_hex(4)}"
    admin = connect_admin(server_url)
    with admin.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))

    statements = [0]

    def count(*_: Any) -> None:
        statements[0] += 1

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", count)
    timers = _Timers()
    timers.install()

    with tempfile.TemporaryDirectory(prefix="hpo-profile-") as folder:
        timestamps = Path(folder) / "timestamps"
        spec = parse_spec(_STUDY.format(timestamps=timestamps, trials=args.trials))
        try:
            stopwatch = Stopwatch()
            launch(spec, storage_url=f"{server_url}/{database}")
            total_s = stopwatch.elapsed()
        finally:
            with admin.cursor() as cursor:
                cursor.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )
            admin.close()
        first_start, last_end, trials = read_timestamps(timestamps)

    window_s = last_end - first_start
    print(
        f"{trials} trials, 2 at once: {window_s:.2f} s from the first trial's start to the last "
        f"trial's end ({1000 * window_s / trials:.1f} ms a trial), {total_s:.2f} s in all, "
        f"{statements[0] / trials:.0f} SQL statements a trial.\n"
    )
    print(f"{'step':<52} {'ms/trial':>9} {'calls/trial':>12}")
    for _, _, label, indent in _TIMED:
        seconds = timers.seconds.get(label, 0.0)
        calls = timers.calls.get(label, 0)
        name = "  " * indent + label
        print(f"{name:<52} {1000 * seconds / trials:9.1f} {calls / trials:12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
