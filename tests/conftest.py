"""Fixtures shared by every test: a local Ray cluster, PostgreSQL databases and SQLite URLs.

Ray and psycopg2 are imported inside the fixtures, so collecting the tests imports neither of
them, nor torch.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from psycopg2.extensions import connection as Connection

MACHINE_POSTGRES_HOST = "127.0.0.1"
MACHINE_POSTGRES_PORT = 5432
POSTGRES_USER = "postgres"
# A server that does not accept a connection within this many seconds counts as absent.
CONNECT_TIMEOUT_S = 2
# pg_ctl waits this long for the server to accept connections before it reports a failure.
PG_CTL_TIMEOUT_S = 60
# A free port is picked, released and then bound by the server, so another process can take it
# in between. Each retry picks a new port.
START_ATTEMPTS = 3

# Test database URLs are formed as f"{base URL}/{TEST_DATABASE_PREFIX}{random hex}".
TEST_DATABASE_PREFIX = "hpo_test_"

# A test that uses one of these fixtures gets the listed marker, which `-m "not postgres"`
# deselects.
FIXTURE_MARKERS = {
    "postgres_server": "postgres",
    "postgres_url": "postgres",
    "create_postgres_database": "postgres",
    "throwaway_postgres": "postgres",
    "ray_cluster": "ray",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture_name in getattr(item, "fixturenames", ()):
            marker = FIXTURE_MARKERS.get(fixture_name)
            if marker is not None:
                item.add_marker(marker)


# --- PostgreSQL -------------------------------------------------------------------------------


def connect_admin(base_url: str) -> Connection:
    """Open an autocommit psycopg2 connection to the `postgres` database behind `base_url`."""
    import psycopg2
    from sqlalchemy.engine import make_url

    url = make_url(base_url)
    connection = psycopg2.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        dbname="postgres",
        connect_timeout=CONNECT_TIMEOUT_S,
    )
    connection.autocommit = True
    return connection


def probe_postgres(base_url: str) -> str | None:
    """Run `SELECT 1` on the server behind `base_url` and return the error as text, or None."""
    import psycopg2

    try:
        connection = connect_admin(base_url)
    except psycopg2.Error as error:
        return " ".join(str(error).split())

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()
    return None


def find_postgres_binary(name: str) -> str | None:
    """Return the path of a PostgreSQL server binary, newest installed major version first."""
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    candidates.sort(key=lambda path: _major_version(path), reverse=True)
    if candidates:
        return candidates[0]
    return shutil.which(name)


def _major_version(binary_path: str) -> int:
    version = Path(binary_path).parent.parent.name
    return int(version) if version.isdigit() else 0


def pick_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((MACHINE_POSTGRES_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary folder, started from the installed binaries.

    Trust authentication, listening on 127.0.0.1 only, unix socket in the same folder. Tests
    that need to stop or restart a server call `stop()` and `start()`. `remove()` stops it and
    deletes the folder.
    """

    root: Path
    pg_ctl: str
    port: int
    run_as: list[str]

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{POSTGRES_USER}@{MACHINE_POSTGRES_HOST}:{self.port}"

    def start(self) -> None:
        self._pg_ctl(
            "start",
            "--wait",
            f"--timeout={PG_CTL_TIMEOUT_S}",
            f"--log={self.log_file}",
            f"--options=-p {self.port}",
        )

    def stop(self) -> None:
        # Immediate mode skips the shutdown checkpoint. The data of a throwaway cluster need not
        # survive, and the next start replays the WAL anyway.
        self._pg_ctl("stop", "--wait", "--mode=immediate")

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        """Stop the server if it runs, then delete its folder."""
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        _run_checked([*self.run_as, self.pg_ctl, f"--pgdata={self.data_dir}", *args], self)


def start_throwaway_postgres() -> ThrowawayPostgres:
    """Create, configure and start a throwaway PostgreSQL cluster on a free port.

    PostgreSQL does not start as root, so as root the binaries run as the `postgres` system user.
    The folder comes from `tempfile.mkdtemp` and not from pytest's `tmp_path`, because pytest
    creates its folders with mode 0700 under root's own folder, where that user cannot enter.

    Raises RuntimeError with the command's output when a step fails, and OSError when the
    folder cannot be created or handed to the postgres user. The caller owns the
    returned cluster and calls `remove()` on it.
    """
    initdb = find_postgres_binary("initdb")
    pg_ctl = find_postgres_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError(
            "initdb or pg_ctl not found under /usr/lib/postgresql/*/bin or on PATH. "
            "Install the PostgreSQL server package."
        )
    run_as = _run_as_prefix()

    root = Path(tempfile.mkdtemp(prefix="hpo-pg-"))
    cluster = ThrowawayPostgres(root=root, pg_ctl=pg_ctl, port=0, run_as=run_as)
    try:
        if run_as:
            postgres_user = pwd.getpwnam(POSTGRES_USER)
            os.chown(root, postgres_user.pw_uid, postgres_user.pw_gid)

        _run_checked(
            [
                *run_as,
                initdb,
                f"--pgdata={cluster.data_dir}",
                f"--username={POSTGRES_USER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cluster,
        )
        _append_settings(cluster)
        _start_on_free_port(cluster)
    except BaseException:
        cluster.remove()
        raise
    return cluster


def _run_as_prefix() -> list[str]:
    if os.geteuid() != 0:
        return []

    try:
        pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        raise RuntimeError(
            f"running as root and no {POSTGRES_USER!r} system user exists. PostgreSQL does not "
            "start as root, so create that user or run the tests as another user."
        ) from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root and `runuser` not found. Install util-linux.")
    return [runuser, "-u", POSTGRES_USER, "--"]


def _append_settings(cluster: ThrowawayPostgres) -> None:
    # The file belongs to the postgres user, and appending as root keeps its owner.
    settings = [
        f"listen_addresses = '{MACHINE_POSTGRES_HOST}'",
        f"unix_socket_directories = '{cluster.root}'",
        # Durability is not needed for a throwaway cluster, and these make it faster.
        "fsync = off",
        "synchronous_commit = off",
        "full_page_writes = off",
    ]
    with open(cluster.data_dir / "postgresql.conf", "a", encoding="utf-8") as config:
        config.write("\n# Settings of the hpo test suite's throwaway cluster\n")
        config.write("\n".join(settings) + "\n")


def _start_on_free_port(cluster: ThrowawayPostgres) -> None:
    for attempt in range(1, START_ATTEMPTS + 1):
        cluster.port = pick_free_port()
        try:
            cluster.start()
            return
        except RuntimeError:
            if attempt == START_ATTEMPTS:
                raise


def _run_checked(command: list[str], cluster: ThrowawayPostgres) -> None:
    # The postgres user may not be able to enter the caller's working directory.
    completed = subprocess.run(
        command,
        cwd=cluster.root,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode == 0:
        return

    server_log = ""
    if cluster.log_file.exists():
        server_log = "\nserver log:\n" + cluster.log_file.read_text(errors="replace")[-2000:]
    raise RuntimeError(
        f"{' '.join(command)} failed with exit status {completed.returncode}:\n"
        f"{completed.stdout}{completed.stderr}{server_log}"
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Yield the base URL of a reachable PostgreSQL server, without a database name.

    The machine's server on 127.0.0.1:5432 comes first, then a throwaway cluster. When neither
    works, the tests that need PostgreSQL fail where CI=true and are skipped elsewhere.
    """
    machine_url = (
        f"postgresql+psycopg2://{POSTGRES_USER}@{MACHINE_POSTGRES_HOST}:{MACHINE_POSTGRES_PORT}"
    )
    machine_error = probe_postgres(machine_url)
    if machine_error is None:
        yield machine_url
        return

    try:
        cluster = start_throwaway_postgres()
    except (RuntimeError, OSError) as error:
        reason = (
            f"no PostgreSQL server for the tests: {machine_url} is not reachable "
            f"({machine_error}), and starting a throwaway cluster failed: {error}"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)

    try:
        yield cluster.url
    finally:
        cluster.remove()


@pytest.fixture
def create_postgres_database(postgres_server: str) -> Iterator[Callable[[], str]]:
    """Yield a function that creates a new, empty database and returns its URL.

    Every database that the function created is dropped after the test.
    """
    from psycopg2 import sql

    created: list[str] = []

    def create() -> str:
        database = TEST_DATABASE_PREFIX + secrets.token_hex(6)
        connection = connect_admin(postgres_server)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        finally:
            connection.close()
        created.append(database)
        return f"{postgres_server}/{database}"

    yield create

    # FORCE (PostgreSQL 13 and later) ends sessions that the test left open, such as a pooled
    # SQLAlchemy engine that was never disposed.
    connection = connect_admin(postgres_server)
    try:
        with connection.cursor() as cursor:
            for database in created:
                cursor.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )
    finally:
        connection.close()


@pytest.fixture
def postgres_url(create_postgres_database: Callable[[], str]) -> str:
    """Return the URL of a new, empty database that is dropped after the test."""
    return create_postgres_database()


@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """Yield a throwaway PostgreSQL cluster of this test's own, which it may stop and restart.

    Unlike `postgres_server`, this fixture never uses the machine's server, so a test can take
    the server down without touching other tests. It fails when the cluster cannot start.
    """
    try:
        cluster = start_throwaway_postgres()
    except (RuntimeError, OSError) as error:
        pytest.fail(f"starting a throwaway PostgreSQL cluster failed: {error}")

    try:
        yield cluster
    finally:
        cluster.remove()


# --- SQLite -----------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """Return the URL of a SQLite database file in this test's temporary folder."""
    return f"sqlite:///{tmp_path}/hpo.db"


# --- Ray --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """Start one local Ray cluster for the session, or reuse the one this process already has.

    A new local cluster from `ray.init()` picks free ports, so it does not take Ray's default
    head port 6379, which another service may hold. Only a cluster started here is shut down.
    """
    import ray

    if ray.is_initialized():
        yield
        return

    # "local" starts a new cluster even when RAY_ADDRESS names another one.
    ray.init(address="local", num_cpus=4, include_dashboard=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


# --- Logging ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    """Put back the root logger's handlers after each test.

    The CLI's commands replace them with a handler on the stream they write to. CliRunner closes
    that stream when the command returns, so a later test's log record would fail to write.
    """
    import logging

    root = logging.getLogger()
    handlers = list(root.handlers)
    level = root.level
    yield
    root.handlers = handlers
    root.setLevel(level)
