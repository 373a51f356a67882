"""A lock per study, held while a launcher counts the budget and asks for a trial.

Two launchers of one study could both see one trial left and both request it. Holding this
lock around the count and the ask makes the budget exact across launchers and machines. It is
a PostgreSQL advisory lock on PostgreSQL, and a file lock beside the database file on SQLite,
whose launchers share one machine's file system.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.storage._retry import retry_transient

if TYPE_CHECKING:
    import optuna

_logger = logging.getLogger(__name__)


@contextmanager
def study_lock(storage: optuna.storages.RDBStorage, study_name: str) -> Iterator[None]:
    """Hold the study's lock for the duration of the block; other launchers wait for it."""
    import sqlalchemy
    import sqlalchemy.exc

    engine = storage.engine
    backend = engine.url.get_backend_name()

    if backend == "postgresql":
        key = _lock_key(study_name)

        def acquire() -> sqlalchemy.Connection:
            connection = engine.connect()
            try:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            except BaseException:
                connection.close()
                raise
            return connection

        connection = retry_transient(acquire, description=f"lock study {study_name!r}")
        try:
            yield
        finally:
            try:
                connection.execute(
                    sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key}
                )
                connection.commit()
            except sqlalchemy.exc.DBAPIError as e:
                # A session-level advisory lock ends with its connection, so a connection that
                # dropped has released it already.
                _logger.debug("Unlocking study %r failed: %s", study_name, e)
            finally:
                connection.close()
        return

    if backend == "sqlite" and engine.url.database:
        lock_path = Path(f"{engine.url.database}.lock")
        with lock_path.open("a") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)
        return

    # NOTE: other databases (MySQL) get no lock, so two launchers of one study there can run
    # one trial more than the budget each time they both ask for the last one.
    yield


def _lock_key(study_name: str) -> int:
    """Map a study name to a signed 64-bit advisory lock key."""
    digest = hashlib.sha256(f"hpo-study:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)
