"""`hpo storage check` and `hpo storage upgrade` on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import optuna
from typer.testing import CliRunner

from hpo.search._cli import app


def test_check_reports_version_and_studies(sqlite_url: str) -> None:
    optuna.create_study(study_name="first", storage=sqlite_url)
    optuna.create_study(study_name="second", storage=sqlite_url)

    result = CliRunner().invoke(app, ["storage", "check", "--storage", sqlite_url, "--json"])

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["studies"] == 2
    assert report["current_version"] == report["head_version"]
    assert report["up_to_date"] is True


def test_check_missing_sqlite_file_writes_nothing(tmp_path: Path) -> None:
    database = tmp_path / "none.db"

    result = CliRunner().invoke(app, ["storage", "check", "--storage", f"sqlite:///{database}"])

    assert result.exit_code == 1
    assert result.output.startswith(f"error: no database at {database}")
    assert not database.exists()


def test_foreign_tables_rejected(tmp_path: Path) -> None:
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    url = f"sqlite:///{database}"

    checked = CliRunner().invoke(app, ["storage", "check", "--storage", url])
    upgraded = CliRunner().invoke(app, ["storage", "upgrade", "--storage", url])

    for result in (checked, upgraded):
        assert result.exit_code == 2
        assert "contains tables of another application (customers)" in result.output
    with sqlite3.connect(database) as connection:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master")]
    assert tables == ["customers"]


def test_upgrade_empty_postgres_then_check(postgres_url: str) -> None:
    password_url = postgres_url.replace("postgres@", "postgres:pw-123@")

    before = CliRunner().invoke(app, ["storage", "check", "--storage", password_url])
    upgraded = CliRunner().invoke(app, ["storage", "upgrade", "--storage", password_url])
    again = CliRunner().invoke(app, ["storage", "upgrade", "--storage", password_url])

    assert before.exit_code == 0, before.output
    assert "schema none (empty database)" in before.output
    assert upgraded.exit_code == 0, upgraded.output
    assert "schema upgraded from none to v" in upgraded.output
    assert again.exit_code == 0, again.output
    assert "is already up to date" in again.output
    for result in (before, upgraded, again):
        assert "pw-123" not in result.output
        assert "postgres:***@" in result.output
