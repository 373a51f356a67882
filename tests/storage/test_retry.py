"""The retry helper for transient database errors, with an injected sleep."""

from __future__ import annotations

import logging

import optuna
import pytest
import sqlalchemy.exc

from hpo.errors import StorageError
from hpo.storage import retry_transient
from hpo.storage._retry import MAX_ATTEMPTS, is_transient


def dropped_connection() -> sqlalchemy.exc.OperationalError:
    return sqlalchemy.exc.OperationalError(
        "SELECT 1", {}, Exception("server closed the connection unexpectedly")
    )


def wrapped_by_optuna(cause: BaseException) -> optuna.exceptions.StorageInternalError:
    error = optuna.exceptions.StorageInternalError("An exception is raised during the commit.")
    error.__cause__ = cause
    return error


def test_transient_errors_recognized() -> None:
    assert is_transient(dropped_connection())
    assert is_transient(wrapped_by_optuna(dropped_connection()))
    assert not is_transient(ValueError("bad value"))
    assert not is_transient(
        sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    )


def test_retry_recovers_and_logs_each_attempt(caplog: pytest.LogCaptureFixture) -> None:
    failures = [dropped_connection(), wrapped_by_optuna(dropped_connection())]
    waits: list[float] = []
    resets: list[int] = []

    def call() -> str:
        if failures:
            raise failures.pop(0)
        return "done"

    with caplog.at_level(logging.INFO, logger="hpo.storage._retry"):
        result = retry_transient(
            call,
            description="record heartbeat of trial 7",
            before_retry=lambda: resets.append(1),
            sleep=waits.append,
        )

    assert result == "done"
    assert waits == [0.5, 1.0]
    assert len(resets) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings[0].startswith(
        "record heartbeat of trial 7: attempt 1/8 failed, retrying in 0.5 s: "
    )
    assert "server closed the connection unexpectedly" in warnings[0]
    assert warnings[1].startswith("record heartbeat of trial 7: attempt 2/8 failed")
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["record heartbeat of trial 7 succeeded on attempt 3/8"]


def test_retry_gives_up_with_storage_error(caplog: pytest.LogCaptureFixture) -> None:
    waits: list[float] = []

    def call() -> None:
        raise dropped_connection()

    with pytest.raises(StorageError, match=r"tell trial 3 failed after 8 attempts"):
        retry_transient(call, description="tell trial 3", sleep=waits.append)

    assert len(waits) == MAX_ATTEMPTS - 1
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert any(r.levelno == logging.ERROR for r in caplog.records)


def test_other_errors_raised_at_once() -> None:
    waits: list[float] = []

    def call() -> None:
        raise ValueError("not a database problem")

    with pytest.raises(ValueError, match="not a database problem"):
        retry_transient(call, description="ask", sleep=waits.append)

    assert waits == []
