"""optuna-dashboard on a study storage, served in this process, with Optuna's artifact store.

The dashboard is optuna-dashboard's WSGI app (`optuna_dashboard.wsgi`) behind the standard
library's threaded WSGI server, which the ``optuna-dashboard`` command (0.21) also uses when
gunicorn is not installed. optuna-dashboard has no login, and anyone who reaches its port can
read, change and delete studies, so it listens on 127.0.0.1 unless a host is given.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from socketserver import ThreadingMixIn
from types import FrameType
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from hpo.errors import HpoError, UsageError

if TYPE_CHECKING:
    import optuna

_logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
ARTIFACT_DIR_NAME = "hpo-artifacts"


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    # Each request runs in its own thread, so a slow page does not block the API calls that
    # the dashboard's other pages make. Threads do not keep the process alive on Ctrl-C.
    daemon_threads = True


class _IPv6ThreadingWSGIServer(_ThreadingWSGIServer):
    address_family = socket.AF_INET6


class _LoggingRequestHandler(WSGIRequestHandler):
    """Log each request through `logging` at debug level instead of printing it to stderr."""

    def log_message(self, format: str, *args: object) -> None:
        _logger.debug("%s %s", self.address_string(), format % args)


def default_artifact_dir(storage_url: str) -> Path:
    """Return the default artifact folder: beside a SQLite file, else in the current folder."""
    from sqlalchemy.engine import make_url

    url = make_url(storage_url)
    if url.get_backend_name() == "sqlite" and url.database:
        return Path(url.database).parent / ARTIFACT_DIR_NAME
    return Path(ARTIFACT_DIR_NAME)


def exposure_warning(host: str) -> str | None:
    """Return a warning when `host` is reachable from other machines, or None for loopback."""
    if _is_loopback(host):
        return None
    return (
        f"the dashboard listens on {host}, which other machines can reach, and it has no "
        "login: anyone who reaches the port can read, change and delete studies. Put it behind "
        f"a proxy that authenticates users, or listen on {DEFAULT_HOST} (the default)."
    )


def serve_dashboard(
    storage: optuna.storages.BaseStorage,
    *,
    host: str,
    port: int,
    artifact_dir: Path,
    on_ready: Callable[[str], None],
) -> None:
    """Serve optuna-dashboard for `storage` on `host`:`port` until Ctrl-C or SIGTERM.

    `on_ready` gets the dashboard's URL once the port is bound. A port in use raises
    `HpoError` naming it; a host that cannot be resolved or bound raises `UsageError`.
    """
    import optuna_dashboard
    from optuna.artifacts import FileSystemArtifactStore

    server = _bind(host, port)
    try:
        artifact_store = FileSystemArtifactStore(str(_make_artifact_dir(artifact_dir)))
        server.set_app(optuna_dashboard.wsgi(storage, artifact_store=artifact_store))
        _serve_until_stopped(server, host, on_ready)
    finally:
        server.server_close()


def _serve_until_stopped(
    server: _ThreadingWSGIServer, host: str, on_ready: Callable[[str], None]
) -> None:
    # `docker stop` and systemd send SIGTERM; it stops the server the way Ctrl-C does.
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    try:
        on_ready(_url(host, server.server_port))
        server.serve_forever()
    except KeyboardInterrupt:
        _logger.info("Dashboard stopped.")
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _bind(host: str, port: int) -> _ThreadingWSGIServer:
    """Bind the server's socket, so that a port in use fails before anything is printed."""
    server_class = _ThreadingWSGIServer
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as e:
        raise UsageError(f"cannot resolve --host {host}: {e.strerror}; give an IP address") from e
    if family == socket.AF_INET6:
        server_class = _IPv6ThreadingWSGIServer

    try:
        return server_class((host, port), _LoggingRequestHandler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise HpoError(
                f"port {port} on {host} is already in use; stop the program that listens on "
                "it, or pick another port with --port"
            ) from e
        if e.errno == errno.EADDRNOTAVAIL:
            raise UsageError(
                f"cannot listen on --host {host}: no network interface of this machine has "
                "that address"
            ) from e
        if e.errno == errno.EACCES:
            raise UsageError(
                f"cannot listen on port {port}: permission denied; ports below 1024 need "
                "root, so pick a higher --port"
            ) from e
        raise HpoError(f"cannot listen on {host}:{port}: {e.strerror}") from e


def _make_artifact_dir(artifact_dir: Path) -> Path:
    if artifact_dir.exists() and not artifact_dir.is_dir():
        raise UsageError(f"--artifact-dir {artifact_dir} is a file; give a folder")
    if not artifact_dir.exists():
        try:
            artifact_dir.mkdir(parents=True)
        except OSError as e:
            raise HpoError(f"cannot create the artifact folder {artifact_dir}: {e}") from e
        _logger.info("Created the artifact folder %s.", artifact_dir.resolve())
    return artifact_dir


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass

    # A host name counts as loopback only when every address it resolves to is.
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return False
    return bool(addresses) and all(
        ipaddress.ip_address(str(address).split("%")[0]).is_loopback for address in addresses
    )


def _url(host: str, port: int) -> str:
    address = f"[{host}]" if ":" in host else host
    return f"http://{address}:{port}/"
