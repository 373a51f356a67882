"""What every benchmark shares: databases, child processes, timings and the result table.

Each tool runs in a child process of its own (`python -m bench.<module> --child TOOL PARAMS`),
so no tool inherits another's imports, Ray cluster or threads, and a crash stays in its row.
The child prints one line `BENCH_RESULT {json}` as its last line of standard output.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432"
POSTGRES_ENV_VAR = "HPO_BENCH_POSTGRES"
RESULT_PREFIX = "BENCH_RESULT "
# Databases of a run are named f"{DATABASE_PREFIX}{run id}_{label}" and dropped at its end.
DATABASE_PREFIX = "hpo_bench_"
_CONNECT_TIMEOUT_S = 5
# Ray (2.60) starts a local cluster on the machine's network address, unless this variable
# turns off multi-machine clusters; then the whole cluster listens on 127.0.0.1 only.
_RAY_LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}

Params = dict[str, Any]
Result = dict[str, Any]


@dataclass(frozen=True)
class Row:
    """One line of the result table: a measured figure or ratio, with its target if it has one."""

    benchmark: str
    measure: str
    value: str
    target: str = ""
    result: str = ""


@dataclass
class Context:
    """What a benchmark needs from the run: the server, its databases, and where to write."""

    server_url: str
    run_id: str
    work_dir: Path
    log_dir: Path
    quick: bool
    databases: list[str] = field(default_factory=list)

    def create_database(self, label: str) -> str:
        """Create an empty database for one tool's run and return its SQLAlchemy URL."""
        from psycopg2 import sql

        name = f"{DATABASE_PREFIX}{self.run_id}_{label}"
        connection = connect_admin(self.server_url)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            connection.close()
        self.databases.append(name)
        return f"{self.server_url}/{name}"

    def drop_databases(self) -> None:
        """Drop every database this run created, ending sessions that still use them."""
        from psycopg2 import sql

        connection = connect_admin(self.server_url)
        try:
            with connection.cursor() as cursor:
                for name in self.databases:
                    # WITH (FORCE) needs PostgreSQL 13 or later.
                    cursor.execute(
                        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                            sql.Identifier(name)
                        )
                    )
        finally:
            connection.close()
        self.databases.clear()

    def run_child(
        self,
        module: str,
        tool: str,
        params: Params,
        *,
        label: str | None = None,
        timeout_s: float = 900,
    ) -> Result:
        """Run one tool in a child process and return the result it printed.

        The child's output goes to the log file `<module>-<label>.log` under `log_dir`, where
        `label` defaults to `tool`. A failed child raises RuntimeError with the end of that log.
        """
        log_path = self.log_dir / f"{module.rsplit('.', 1)[-1]}-{label or tool}.log"
        command = [sys.executable, "-m", module, "--child", tool, json.dumps(params)]
        with log_path.open("w", encoding="utf-8") as log:
            completed = subprocess.run(
                command,
                cwd=REPO_ROOT,
                env={**os.environ, **_RAY_LOOPBACK_ENV},
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                timeout=timeout_s,
                check=False,
            )
            log.write(completed.stdout)

        for line in reversed(completed.stdout.splitlines()):
            if completed.returncode == 0 and line.startswith(RESULT_PREFIX):
                result: Result = json.loads(line.removeprefix(RESULT_PREFIX))
                return result
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
        raise RuntimeError(
            f"{module} {tool} failed with exit status {completed.returncode}; "
            f"log {log_path}:\n{tail}"
        )


def new_run_id() -> str:
    """Return a run id that sorts by start time and is unique among concurrent runs."""
    return f"{datetime.now():%Y%m%d_%H%M%S}_{secrets.token_hex(2)}"


def server_url_from_env(flag: str | None) -> str:
    return flag or os.environ.get(POSTGRES_ENV_VAR) or DEFAULT_POSTGRES


def connect_admin(server_url: str, database: str = "postgres") -> Any:
    """Open an autocommit psycopg2 connection to `database` on the server of `server_url`."""
    import psycopg2
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    connection = psycopg2.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=database,
        connect_timeout=_CONNECT_TIMEOUT_S,
        application_name="hpo-bench",
    )
    connection.autocommit = True
    return connection


def child_main(tools: Mapping[str, Callable[[Params], Result]]) -> None:
    """Run the tool named on the command line and print its result for `Context.run_child`."""
    if len(sys.argv) != 4 or sys.argv[1] != "--child" or sys.argv[2] not in tools:
        names = ", ".join(tools)
        sys.exit(f"usage: python -m MODULE --child {{{names}}} PARAMS_JSON")

    result = tools[sys.argv[2]](json.loads(sys.argv[3]))
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def read_timestamps(path: Path) -> tuple[float, float, int]:
    """Return the first start, the last end and the number of lines of a timestamps file."""
    starts: list[float] = []
    ends: list[float] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        start, end = line.split()
        starts.append(float(start))
        ends.append(float(end))
    if not starts:
        raise RuntimeError(f"no trial wrote its timestamps to {path}")
    return min(starts), max(ends), len(starts)


class Stopwatch:
    """Wall time since creation, in seconds, on the monotonic clock."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self._start


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "not reached"
    if seconds < 0.1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.1f} s" if seconds >= 10 else f"{seconds:.2f} s"


def format_ratio(ratio: float) -> str:
    return f"{ratio:.2f}x" if ratio < 10 else f"{ratio:.0f}x"


def verdict(met: bool, shortfall: str = "") -> str:
    """Return "met", or "missed" with how far from the target the figure is."""
    if met:
        return "met"
    return f"missed ({shortfall})" if shortfall else "missed"


def render_table(rows: list[Row]) -> str:
    """Render the rows as a Markdown table, the form docs/benchmarks.md keeps."""
    header = ("benchmark", "measure", "value", "target", "result")
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for row in rows:
        cells = (row.benchmark, row.measure, row.value, row.target, row.result)
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines)
