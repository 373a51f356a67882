"""Checks that the shared fixtures give real, isolated components."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    from conftest import ThrowawayPostgres

# Ray's default head (GCS) port, which the test cluster must leave to other services.
RAY_DEFAULT_GCS_PORT = 6379


def query_scalar(url: str, statement: str) -> object:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(statement)).scalar_one()
    finally:
        engine.dispose()


def test_postgres_url_runs_query(postgres_url: str) -> None:
    database = make_url(postgres_url).database

    assert database is not None
    assert database.startswith("hpo_test_")
    assert query_scalar(postgres_url, "SELECT current_database()") == database
    assert (
        query_scalar(postgres_url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        == 0
    )


def test_postgres_databases_are_distinct(
    postgres_url: str, create_postgres_database: Callable[[], str]
) -> None:
    second_url = create_postgres_database()
    third_url = create_postgres_database()

    assert len({postgres_url, second_url, third_url}) == 3
    assert query_scalar(second_url, "SELECT current_database()") == make_url(second_url).database


def test_sqlite_url_creates_file(sqlite_url: str, tmp_path: Path) -> None:
    assert query_scalar(sqlite_url, "SELECT 1") == 1
    assert (tmp_path / "hpo.db").is_file()


def test_ray_cluster_runs_task(ray_cluster: None) -> None:
    import ray

    @ray.remote
    def square(value: int) -> int:
        return value * value

    assert ray.get([square.remote(value) for value in range(4)]) == [0, 1, 4, 9]


def test_ray_cluster_avoids_default_port(ray_cluster: None) -> None:
    import ray

    gcs_address = ray.get_runtime_context().gcs_address
    gcs_port = int(gcs_address.rsplit(":", 1)[1])

    assert gcs_port != RAY_DEFAULT_GCS_PORT


def test_throwaway_postgres_starts_and_restarts(throwaway_postgres: ThrowawayPostgres) -> None:
    url = throwaway_postgres.url

    assert make_url(url).port != 5432
    assert query_scalar(f"{url}/postgres", "SELECT 1") == 1
    assert query_scalar(f"{url}/postgres", "SHOW listen_addresses") == "127.0.0.1"

    throwaway_postgres.restart()

    assert query_scalar(f"{url}/postgres", "SELECT 1") == 1


def test_throwaway_postgres_remove_deletes_folder(throwaway_postgres: ThrowawayPostgres) -> None:
    root = throwaway_postgres.root

    throwaway_postgres.remove()

    assert not root.exists()
