"""The one retry helper for transient database errors.

A database restart, a dropped connection, a deadlock or a serialization failure in the middle
of a study should cost a retry, not the study. Each attempt that fails logs a warning with the
attempt number and the wait; a recovery logs at info; giving up raises `StorageError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from hpo.errors import StorageError

_logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_ATTEMPTS = 8
INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
# The waits double from 0.5 s and stop growing at 8 s: 0.5 + 1 + 2 + 4 + 8 + 8 + 8 = 31.5 s
# between the first and the last of the 8 attempts, enough for a PostgreSQL restart or a
# failover of a managed database, which usually take seconds.


def is_transient(error: BaseException) -> bool:
    """Return whether `error`, or the database error that caused it, may pass on a retry.

    Transient errors and why they are retried:

    - `OperationalError` from the driver: the server closed the connection, is starting up or
      shutting down, refused the connection while restarting, or (SQLite) the database was
      locked by another writer for longer than the busy timeout. PostgreSQL's deadlocks and
      serialization failures are `OperationalError` subclasses in psycopg2 too.
    - `DBAPIError` with `connection_invalidated`: SQLAlchemy saw the connection drop.
    - `PendingRollbackError`: an earlier call's connection dropped so that the session could
      not roll back; the session is discarded before the next attempt (see `before_retry`).

    Optuna's RDB storage wraps SQLAlchemy errors in `StorageInternalError`, so the cause chain
    is followed.
    """
    import sqlalchemy.exc

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(
            seen, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.PendingRollbackError)
        ):
            return True
        seen = seen.__cause__
    return False


def retry_transient(
    call: Callable[[], T],
    *,
    description: str,
    before_retry: Callable[[], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `call`, retrying transient database errors with exponential backoff.

    `description` names the operation in log lines, such as "record heartbeat of trial 7".
    `before_retry` runs before each new attempt, to discard state that the failure broke.
    Errors that are not transient are raised at once. `sleep` is injected by tests.
    """
    backoff = INITIAL_BACKOFF_S
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            result = call()
        except Exception as e:
            if not is_transient(e):
                raise
            reason = _one_line(e)
            if attempt == MAX_ATTEMPTS:
                _logger.error(
                    "%s failed after %d attempts, giving up: %s", description, attempt, reason
                )
                raise StorageError(
                    f"{description} failed after {attempt} attempts: {reason}. "
                    "Check that the database is running and reachable, then launch again "
                    "to continue the study."
                ) from e
            _logger.warning(
                "%s: attempt %d/%d failed, retrying in %.1f s: %s",
                description,
                attempt,
                MAX_ATTEMPTS,
                backoff,
                reason,
            )
            sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            if before_retry is not None:
                before_retry()
            continue

        if attempt > 1:
            _logger.info("%s succeeded on attempt %d/%d", description, attempt, MAX_ATTEMPTS)
        return result
    raise AssertionError("unreachable: the last attempt returns or raises")


def _one_line(error: BaseException) -> str:
    """Return the deepest cause's first line, which names the database's own error."""
    deepest = error
    while deepest.__cause__ is not None:
        deepest = deepest.__cause__
    lines = str(deepest).strip().splitlines()
    text = lines[0] if lines else type(deepest).__name__
    return f"{type(deepest).__name__}: {text}"
