"""Checking and upgrading the Optuna schema of a storage, for ``hpo storage check|upgrade``."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.errors import StorageError
from hpo.storage._url import mask_url, open_storage, reject_foreign_tables

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class StorageReport:
    """The result of `check_storage`: the masked URL, schema versions and number of studies."""

    url: str
    tables: int
    current_version: str | None
    head_version: str
    studies: int

    @property
    def up_to_date(self) -> bool:
        return self.current_version == self.head_version


def check_storage(url: str) -> StorageReport:
    """Report the schema version and number of studies of the storage at `url`; write nothing.

    Raises `StorageError` for a database that cannot be reached, or whose tables belong to
    another application.
    """
    tables = _table_names(url)
    storage = _open_existing(url, tables)
    if storage is None:
        return StorageReport(
            url=mask_url(url),
            tables=0,
            current_version=None,
            head_version=_head_version(),
            studies=0,
        )

    return StorageReport(
        url=mask_url(url),
        tables=len(tables),
        current_version=storage.get_current_version(),
        head_version=storage.get_head_version(),
        studies=len(storage.get_all_studies()),
    )


def upgrade_storage(url: str) -> tuple[str, str]:
    """Upgrade the Optuna schema at `url` to this Optuna's version; return (before, after).

    An empty database gets the current schema. A database of another application is rejected
    before anything is written.
    """
    tables = _table_names(url)
    storage = _open_existing(url, tables)
    if storage is None:
        created = open_storage(url)
        version = created.get_current_version()
        return ("none", version)

    before = storage.get_current_version()
    storage.upgrade()
    return (before, storage.get_current_version())


def _table_names(url: str) -> list[str]:
    import sqlalchemy
    import sqlalchemy.exc

    from hpo.storage._url import _parse

    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        # Opening a missing SQLite file would create it, and a check must not write.
        database = parsed.database
        if database and not Path(database).exists():
            raise StorageError(f"no database at {Path(database).resolve()}; check the URL")

    engine = sqlalchemy.create_engine(parsed)
    try:
        return sqlalchemy.inspect(engine).get_table_names()
    except sqlalchemy.exc.OperationalError as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else str(e)
        raise StorageError(
            f"cannot reach the database at {mask_url(url)} (host {parsed.host or 'local'}): "
            f"{reason}"
        ) from e
    finally:
        engine.dispose()


def _open_existing(url: str, tables: list[str]) -> optuna.storages.RDBStorage | None:
    """Open the Optuna storage without creating or checking tables; None for an empty database."""
    import optuna

    if not tables:
        return None
    reject_foreign_tables(url, tables)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, skip_compatibility_check=True, skip_table_creation=True
        )


def _head_version() -> str:
    """Return the schema version this Optuna writes, read from a throwaway in-memory storage."""
    import optuna

    return optuna.storages.RDBStorage("sqlite:///:memory:").get_head_version()
