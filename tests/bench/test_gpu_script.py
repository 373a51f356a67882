"""The GPU benchmark script, shrunk with --smoke to a few CPU trials, runs to its table.

The script runs as a user runs it: in a child process from the repository root, against the
test PostgreSQL server. Each tool it measures starts its own local Ray cluster.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Four runs of 2 one-epoch trials, each starting a Ray cluster: about a minute on 2 cores.
TIMEOUT_S = 600
TOOLS = ("hpo, median pruner", "hpo, no pruner", "Optuna, no pruner", "Ray Tune, ASHA")


@pytest.fixture
def ray_tune_installed() -> None:
    if importlib.util.find_spec("ray.tune") is None or importlib.util.find_spec("pandas") is None:
        reason = "Ray Tune is not installed; install the bench extra: pip install -e '.[bench]'"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.mark.slow
def test_gpu_smoke_prints_every_tool(ray_tune_installed: None, postgres_server: str) -> None:
    import psycopg2

    completed = subprocess.run(
        [sys.executable, "-m", "bench.gpu", "--smoke", "--postgres", postgres_server],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    for tool in TOOLS:
        assert f"| 5 gpu | {tool}: training samples/s per trial, median |" in completed.stdout
        assert f"| 5 gpu | {tool}: GPU utilization | " in completed.stdout

    run_id = re.search(r"^Run id: (\S+)$", completed.stdout, re.MULTILINE)
    assert run_id is not None, completed.stdout
    url = postgres_server.replace("postgresql+psycopg2://", "postgresql://")
    connection = psycopg2.connect(f"{url}/postgres")
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s",
                (f"hpo_bench_{run_id.group(1)}%",),
            )
            left = cursor.fetchall()
    finally:
        connection.close()
    assert left == []
