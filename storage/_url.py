"""Storage URLs: the embedded default, masking passwords, and opening Optuna's RDB storage."""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.errors import StorageError, UsageError

if TYPE_CHECKING:
    import optuna
    from sqlalchemy.engine import URL

_logger = logging.getLogger(__name__)

DEFAULT_STORAGE_URL = "sqlite:///hpo.db"
STORAGE_ENV_VAR = "HPO_STORAGE"
APPLICATION_NAME = "hpo"

# How long a client waits for a PostgreSQL server before giving up, in seconds.
_CONNECT_TIMEOUT_S = 10
# How long SQLite waits for another writer's lock before raising "database is locked", in
# seconds. The launcher is the only writer of its study, so this covers a dashboard's or a
# second launcher's short transactions.
_SQLITE_BUSY_TIMEOUT_S = 30
# The pool is capped at 4 connections, whatever the parallelism. A launcher makes every database
# call from one thread and holds at most one more connection for the study lock, so it uses 2.
_POOL_SIZE = 2
_MAX_OVERFLOW = 2
# Advisory lock key for creating Optuna's tables: any fixed 64-bit number that no other
# application of the database uses; this one spells "hpo-schm" in ASCII.
_SCHEMA_LOCK_KEY = 0x68706F2D7363686D
_SCHEMA_ATTEMPTS = 3
# Optuna keeps its schema version in this table, so a database without it contains no Optuna
# schema, whatever other tables it has.
OPTUNA_VERSION_TABLE = "version_info"
MAX_CONNECTIONS = _POOL_SIZE + _MAX_OVERFLOW


def resolve_storage_url(flag: str | None, from_study_file: str | None = None) -> str:
    """Pick the storage URL: the flag, then the study file, then $HPO_STORAGE, then the default.

    The study file's URL still contains ``${NAME}`` when its variable was not set, which is
    an error only when no flag replaces it.
    """
    if flag:
        return flag
    if from_study_file:
        unset = re.search(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", from_study_file)
        if unset:
            raise UsageError(
                f"study.storage uses the environment variable {unset.group(1)}, which is not "
                "set; set it, or pass --storage"
            )
        return from_study_file
    return os.environ.get(STORAGE_ENV_VAR) or DEFAULT_STORAGE_URL


def mask_url(url: str) -> str:
    """Return the URL with its password replaced by ``***``, for logs, tables and errors."""
    try:
        parsed = _parse(url)
    except UsageError:
        # An unparsable URL cannot be masked field by field, so hide everything after "://".
        scheme, separator, _ = url.partition("://")
        return f"{scheme}://***" if separator else "***"
    # libpq also takes the password as a query parameter, ?password=...
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True)


def open_storage(
    url: str,
    *,
    create: bool = True,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
) -> optuna.storages.RDBStorage:
    """Open Optuna's RDB storage at `url`, with every call retried on transient errors.

    Creates the tables unless `create` is false. `heartbeat_interval` and `grace_period`, in
    seconds, turn on Optuna's trial heartbeats. Raises `StorageError` naming the masked URL when
    the database cannot be reached, and for a SQLite file that does not exist when `create` is
    false, so read-only commands never leave an empty database file behind.
    """
    import optuna
    import sqlalchemy.exc

    from hpo.storage._rdb import ResilientRDBStorage

    parsed = _parse(url)
    engine_kwargs: dict[str, object]

    if parsed.get_backend_name() == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": _SQLITE_BUSY_TIMEOUT_S}}
        _prepare_sqlite(parsed, create=create)
    else:
        engine_kwargs = {
            "pool_pre_ping": True,
            "pool_size": _POOL_SIZE,
            "max_overflow": _MAX_OVERFLOW,
        }
        if parsed.get_backend_name() == "postgresql":
            # The application name lets an operator find hpo's connections in pg_stat_activity.
            engine_kwargs["connect_args"] = {
                "connect_timeout": _CONNECT_TIMEOUT_S,
                "application_name": APPLICATION_NAME,
            }

    try:
        # RDBStorage's heartbeat arguments are marked experimental since Optuna 2.9 and still
        # are in 5.1. hpo depends on them for stale-trial recovery, and its tests pin the
        # behaviour, so the warning would only confuse users.
        reject_foreign_tables(url, _table_names(parsed))
        with warnings.catch_warnings(), _schema_lock(parsed):
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for attempt in range(1, _SCHEMA_ATTEMPTS + 1):
                try:
                    return ResilientRDBStorage(
                        url,
                        engine_kwargs=engine_kwargs,
                        heartbeat_interval=heartbeat_interval,
                        grace_period=grace_period,
                    )
                except sqlalchemy.exc.IntegrityError:
                    # A client outside hpo (optuna-dashboard, plain Optuna) created the same
                    # tables at the same moment; they exist now, so the next attempt passes.
                    if attempt == _SCHEMA_ATTEMPTS:
                        raise
                    _logger.debug("Creating Optuna's tables raced with another client; again")
            raise AssertionError("unreachable: the last attempt returns or raises")
    except sqlalchemy.exc.OperationalError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
        raise StorageError(
            f"cannot reach the database at {mask_url(url)} (host {parsed.host or 'local'}): "
            f"{reason}. Check that the server is running and the URL is right "
            f"(--storage or ${STORAGE_ENV_VAR})."
        ) from e
    except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError) as e:
        raise UsageError(f"invalid storage URL {mask_url(url)}: {e}") from e
    except ModuleNotFoundError as e:
        raise UsageError(
            f"the database driver for {mask_url(url)} is not installed: {e.name}. "
            "Use postgresql+psycopg2:// for PostgreSQL."
        ) from e


def reject_foreign_tables(url: str, tables: list[str]) -> None:
    """Raise `UsageError` if the database has tables but no Optuna schema among them.

    Optuna would add its tables next to another application's, so hpo refuses such a database
    before writing anything.
    """
    if tables and OPTUNA_VERSION_TABLE not in tables:
        shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise UsageError(
            f"the database at {mask_url(url)} contains tables of another application ({shown}) "
            "and no Optuna schema; give hpo a database of its own"
        )


def _table_names(parsed: URL) -> list[str]:
    """List the database's tables through a connection of its own, closed before returning."""
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").exists():
        return []

    connect_args: dict[str, object] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args = {
            "connect_timeout": _CONNECT_TIMEOUT_S,
            "application_name": APPLICATION_NAME,
        }
    engine = sqlalchemy.create_engine(parsed, poolclass=NullPool, connect_args=connect_args)
    try:
        return sqlalchemy.inspect(engine).get_table_names()
    finally:
        engine.dispose()


@contextmanager
def _schema_lock(parsed: URL) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock while Optuna creates or checks its tables.

    Optuna creates its tables and enum types without locking, so two launchers starting on an
    empty database at once fail with a duplicate-key error on the second. Other backends need no
    lock: SQLite serializes writers itself.
    """
    if parsed.get_backend_name() != "postgresql":
        yield
        return

    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(
        parsed,
        poolclass=NullPool,
        connect_args={"connect_timeout": _CONNECT_TIMEOUT_S, "application_name": APPLICATION_NAME},
    )
    try:
        with engine.connect() as connection:
            connection.execute(
                sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": _SCHEMA_LOCK_KEY}
            )
            try:
                yield
            finally:
                connection.execute(
                    sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": _SCHEMA_LOCK_KEY}
                )
                connection.commit()
    finally:
        engine.dispose()


def _parse(url: str) -> URL:
    import sqlalchemy.exc
    from sqlalchemy.engine import make_url

    try:
        return make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError) as e:
        # A ValueError comes from a password with an unencoded "@" or ":", among others.
        raise UsageError(
            f"invalid storage URL {url.partition('://')[0]}://***: expected a SQLAlchemy URL "
            "such as sqlite:///hpo.db or postgresql+psycopg2://user@host:5432/db"
        ) from e


def _prepare_sqlite(parsed: URL, *, create: bool) -> None:
    database = parsed.database
    if not database or database == ":memory:":
        raise UsageError(
            "an in-memory SQLite storage loses the study when hpo exits; "
            "give a file, such as sqlite:///hpo.db"
        )

    path = Path(database)
    if not path.exists():
        if not create:
            raise StorageError(
                f"no study database at {path.resolve()}; pass --storage or set "
                f"${STORAGE_ENV_VAR} to the database the study was launched with"
            )
        if not path.parent.is_dir():
            raise StorageError(
                f"cannot create the SQLite database {path}: folder {path.parent} does not exist"
            )

    # Write-ahead logging lets readers such as optuna-dashboard read while the launcher
    # writes. The mode is stored in the database file, so setting it once is enough.
    if create:
        try:
            with sqlite3.connect(path, timeout=_SQLITE_BUSY_TIMEOUT_S) as connection:
                connection.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as e:
            raise StorageError(f"cannot open the SQLite database {path}: {e}") from e
