"""`hpo dashboard`: the installed console script serving optuna-dashboard, seen in Chromium.

The dashboard runs as a real subprocess on a port that the server picks itself (`--port 0`),
and the tests read the URL from its first line of output. The browser is Debian's `chromium`
in headless mode: `--dump-dom` with a virtual time budget returns the DOM after the page's
scripts have fetched and rendered the study, and `--screenshot` keeps a picture of it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from hpo.search._cli import app
from hpo.search._dashboard import default_artifact_dir, exposure_warning
from hpo.storage import open_storage

REPO_ROOT = Path(__file__).resolve().parents[2]
# Screenshots are copied here as well, so that they outlive pytest's temporary folders.
SCREENSHOT_DIR = REPO_ROOT / "build" / "test-artifacts"
# How long a dashboard may take to bind its port, and the browser to render a page, in seconds.
STARTUP_TIMEOUT_S = 30
BROWSER_TIMEOUT_S = 90
# Chromium runs the page's scripts for this much virtual time, in milliseconds. Virtual time
# pauses while a fetch is pending, so a slow server does not cut the rendering short.
VIRTUAL_TIME_BUDGET_MS = 15_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Written as dashboard_objectives.py. This process and the reused Ray workers keep a module once
# imported, so each test file gives its objectives module a name of its own.
OBJECTIVES = textwrap.dedent(
    """
    import time
    from pathlib import Path


    def attributes_and_failures(trial):
        # The same user attributes as the built-in cnn objective, and a failure for x < 0.
        x = trial.suggest_float("x", -1.0, 1.0)
        for step in range(3):
            trial.report(x + step, step)
        trial.set_user_attr("sparsity", 0.5)
        trial.set_user_attr("nonzero_params", 1234)
        trial.set_user_attr("model_size_bytes", 4936)
        trial.set_user_attr("inference_ms", 0.25)
        trial.set_user_attr("epochs_run", 3)
        if x < 0:
            raise ValueError(f"negative x={x}")
        return x


    def waits_for_flag(trial, flag):
        trial.report(0.5, 0)
        deadline = time.monotonic() + 60
        while not Path(flag).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return 1.0
    """
)


# --- Helpers ----------------------------------------------------------------------------------


@dataclass
class Dashboard:
    """A running ``hpo dashboard`` process, its URL and its output files."""

    process: subprocess.Popen[bytes]
    url: str
    stdout_path: Path
    stderr_path: Path

    @property
    def port(self) -> int:
        return int(self.url.rstrip("/").rsplit(":", 1)[1])

    def output(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def get_json(self, path: str) -> Any:
        # The server may listen on 0.0.0.0, but the tests only ever connect to loopback.
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)


def hpo_script() -> Path:
    script = Path(sys.executable).parent / "hpo"
    assert script.exists(), f"the hpo console script is not installed at {script}"
    return script


@contextmanager
def running_dashboard(folder: Path, *args: str) -> Iterator[Dashboard]:
    """Start ``hpo dashboard ARGS --port 0``, wait until it serves, and stop it afterwards."""
    name = f"dashboard-{secrets.token_hex(3)}"
    stdout_path = folder / f"{name}.out"
    stderr_path = folder / f"{name}.err"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [str(hpo_script()), "dashboard", *args, "--port", "0"],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        url = wait_for_url(process, stdout_path, stderr_path)
        dashboard = Dashboard(process, url, stdout_path, stderr_path)
        wait_until_serving(dashboard)
        yield dashboard
    finally:
        stop(process)


def wait_for_url(process: subprocess.Popen[bytes], stdout_path: Path, stderr_path: Path) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        found = re.search(r" at (http://\S+:\d+/)", stdout_path.read_text())
        if found:
            return found.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    pytest.fail(
        f"hpo dashboard did not print its URL (exit status {process.poll()}):\n"
        f"{stdout_path.read_text()}{stderr_path.read_text()}"
    )


def wait_until_serving(dashboard: Dashboard) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            dashboard.get_json("/api/meta")
            return
        except (urllib.error.URLError, ConnectionError) as error:
            if time.monotonic() > deadline or dashboard.process.poll() is not None:
                pytest.fail(f"the dashboard does not answer: {error}\n{dashboard.output()}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def chromium_or_skip() -> str:
    chromium = shutil.which("chromium")
    if chromium is not None:
        return chromium
    reason = "chromium is not installed (apt-get install chromium; scripts/test installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def run_chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False
    )


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skipping += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def visible_text(dom: str) -> str:
    collector = _TextCollector()
    collector.feed(dom)
    return " ".join(" ".join(collector.parts).split())


def rendered_text(chromium: str, tmp_path: Path, url: str, expected: list[str]) -> str:
    """Return the page's text once every `expected` string shows, or after three tries."""
    text = ""
    for attempt in range(3):
        completed = run_chromium(chromium, tmp_path / f"profile-{attempt}", "--dump-dom", url)
        text = visible_text(completed.stdout)
        if all(part in text for part in expected):
            return text
    return text


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG file"
    assert data[12:16] == b"IHDR", f"{path} has no IHDR chunk first"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def write_study(folder: Path, body: str) -> Path:
    (folder / "dashboard_objectives.py").write_text(OBJECTIVES)
    path = folder / "study.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def study_id(dashboard: Dashboard, name: str) -> int | None:
    studies = dashboard.get_json("/api/studies")["study_summaries"]
    for study in studies:
        if study["study_name"] == name:
            return int(study["study_id"])
    return None


# --- Host checks and defaults -----------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_need_no_warning(host: str) -> None:
    assert exposure_warning(host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "2001:db8::1"])
def test_public_hosts_get_warning(host: str) -> None:
    warning = exposure_warning(host)

    assert warning is not None
    assert warning.startswith(f"the dashboard listens on {host}, which other machines can reach")
    assert "no login" in warning
    assert "proxy" in warning


def test_artifact_dir_beside_sqlite_file(tmp_path: Path) -> None:
    sqlite = default_artifact_dir(f"sqlite:///{tmp_path}/studies/hpo.db")
    postgres = default_artifact_dir("postgresql+psycopg2://hpo@127.0.0.1:5432/hpo")

    assert sqlite == tmp_path / "studies" / "hpo-artifacts"
    assert postgres == Path("hpo-artifacts")


# --- Bad input --------------------------------------------------------------------------------


def test_dashboard_port_in_use(sqlite_url: str, tmp_path: Path) -> None:
    open_storage(sqlite_url).engine.dispose()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = CliRunner().invoke(
            app,
            [
                "dashboard",
                "--storage",
                sqlite_url,
                "--port",
                str(port),
                "--artifact-dir",
                str(tmp_path / "artifacts"),
            ],
        )

    assert result.exit_code == 1
    first_line = result.output.splitlines()[0]
    assert first_line.startswith(f"error: port {port} on 127.0.0.1 is already in use")
    assert "--port" in first_line
    assert "Traceback" not in result.output


def test_dashboard_without_database(tmp_path: Path) -> None:
    database = tmp_path / "missing.db"

    result = CliRunner().invoke(app, ["dashboard", "--storage", f"sqlite:///{database}"])

    assert result.exit_code == 1
    assert result.output.startswith("error: no study database at")
    assert not database.exists()


def test_dashboard_unresolvable_host(sqlite_url: str) -> None:
    open_storage(sqlite_url).engine.dispose()

    result = CliRunner().invoke(
        app, ["dashboard", "--storage", sqlite_url, "--host", "no-such-host.invalid"]
    )

    assert result.exit_code == 2
    assert result.output.startswith("error: cannot resolve --host no-such-host.invalid")


def test_dashboard_artifact_dir_is_file(sqlite_url: str, tmp_path: Path) -> None:
    open_storage(sqlite_url).engine.dispose()
    not_a_folder = tmp_path / "artifacts.txt"
    not_a_folder.write_text("")

    result = CliRunner().invoke(
        app,
        ["dashboard", "--storage", sqlite_url, "--port", "0", "--artifact-dir", str(not_a_folder)],
    )

    assert result.exit_code == 2
    assert result.output.startswith(f"error: --artifact-dir {not_a_folder} is a file")


# --- The served dashboard ---------------------------------------------------------------------


def test_dashboard_shows_launched_study_in_chromium(
    ray_cluster: None,
    sqlite_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    chromium = chromium_or_skip()
    study_file = write_study(
        tmp_path,
        """
        study:
          name: watched
          direction: maximize
        objective:
          name: dashboard_objectives:attributes_and_failures
        sampler: {type: random, seed: 3}
        budget:
          n_trials: 8
        resources:
          parallelism: 2
        """,
    )
    launched = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])
    assert launched.exit_code == 0, launched.output
    study = optuna.load_study(study_name="watched", storage=sqlite_url)
    failed = next(t for t in study.trials if t.state == TrialState.FAIL)
    complete = next(t for t in study.trials if t.state == TrialState.COMPLETE)
    artifact_dir = tmp_path / "hpo-artifacts"
    artifact_dir.mkdir()
    artifact_file = tmp_path / "confusion.txt"
    artifact_file.write_text("confusion matrix of trial")
    artifact_id = optuna.artifacts.upload_artifact(
        artifact_store=optuna.artifacts.FileSystemArtifactStore(str(artifact_dir)),
        file_path=str(artifact_file),
        study_or_trial=study,
    )

    with running_dashboard(tmp_path, "--storage", sqlite_url) as dashboard:
        number = study_id(dashboard, "watched")
        assert number is not None
        trials_url = f"{dashboard.url}dashboard/studies/{number}/trials"
        listing = rendered_text(chromium, tmp_path, trials_url, ["watched", "8 Trials"])
        failed_page = rendered_text(
            chromium, tmp_path, f"{trials_url}?numbers={failed.number}", ["fail_reason"]
        )
        complete_page = rendered_text(
            chromium, tmp_path, f"{trials_url}?numbers={complete.number}", ["epochs_run"]
        )
        study_page = rendered_text(
            chromium, tmp_path, f"{dashboard.url}dashboard/studies/{number}", ["confusion.txt"]
        )
        screenshot = tmp_path / "dashboard-trials.png"
        shot = run_chromium(
            chromium,
            tmp_path / "profile-screenshot",
            "--window-size=1280,1000",
            f"--screenshot={screenshot}",
            f"{trials_url}?numbers={complete.number}",
        )
        artifact_url = f"/artifacts/{number}/{artifact_id}"
        with urllib.request.urlopen(f"http://127.0.0.1:{dashboard.port}{artifact_url}") as got:
            artifact_body = got.read()

    assert "watched" in listing
    assert "8 Trials" in listing
    for shown in ("fail_reason", "ValueError: negative x=", "worker_host", "duration_s"):
        assert shown in failed_page, f"{shown!r} is not on the failed trial's page"
    for shown in ("sparsity", "nonzero_params", "model_size_bytes", "inference_ms", "epochs_run"):
        assert shown in complete_page, f"{shown!r} is not on the complete trial's page"
    assert "confusion.txt" in study_page
    assert artifact_body == b"confusion matrix of trial"
    assert screenshot.exists(), shot.stderr
    assert png_size(screenshot) == (1280, 1000)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    kept = SCREENSHOT_DIR / screenshot.name
    shutil.copyfile(screenshot, kept)
    with capsys.disabled():
        print(f"\ndashboard screenshot: {kept}")


def test_dashboard_api_serves_running_trial_values(
    ray_cluster: None, sqlite_url: str, tmp_path: Path
) -> None:
    flag = tmp_path / "finish"
    study_file = write_study(
        tmp_path,
        f"""
        study:
          name: live-dashboard
          direction: maximize
        objective:
          name: dashboard_objectives:waits_for_flag
          args: {{flag: "{flag}"}}
        budget:
          n_trials: 1
        """,
    )
    open_storage(sqlite_url).engine.dispose()
    outcome: dict[str, Any] = {}

    def launch() -> None:
        outcome["result"] = CliRunner().invoke(
            app, ["launch", str(study_file), "--storage", sqlite_url]
        )

    with running_dashboard(tmp_path, "--storage", sqlite_url) as dashboard:
        launcher = threading.Thread(target=launch)
        launcher.start()
        running: list[dict[str, Any]] = []
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not running:
                number = study_id(dashboard, "live-dashboard")
                if number is not None:
                    detail = dashboard.get_json(f"/api/studies/{number}")
                    running = [
                        trial
                        for trial in detail["trials"]
                        if trial["state"] == "Running" and trial["intermediate_values"]
                    ]
                time.sleep(0.2)
        finally:
            flag.touch()
            launcher.join(timeout=120)

    assert len(running) == 1
    assert running[0]["intermediate_values"] == [{"step": 0, "value": 0.5}]
    result = outcome["result"]
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="live-dashboard", storage=sqlite_url).trials
    assert [trial.state for trial in trials] == [TrialState.COMPLETE]


def test_dashboard_public_host_warns_and_masks_password(postgres_url: str, tmp_path: Path) -> None:
    password = "s3cret-pw"
    with_password = postgres_url.replace("://postgres@", f"://postgres:{password}@")
    assert password in with_password
    optuna.create_study(study_name="exposed", storage=postgres_url)

    with running_dashboard(
        tmp_path, "--storage", with_password, "--host", "0.0.0.0", "-vv"
    ) as dashboard:
        names = [s["study_name"] for s in dashboard.get_json("/api/studies")["study_summaries"]]
        dashboard.get_json(f"/api/studies/{study_id(dashboard, 'exposed')}")
    output = dashboard.output()
    stderr = dashboard.stderr_path.read_text()

    assert names == ["exposed"]
    warnings = [line for line in stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1
    assert warnings[0].startswith("warning: the dashboard listens on 0.0.0.0")
    assert "proxy" in stderr
    assert password not in output
    assert "postgres:***@127.0.0.1" in dashboard.stdout_path.read_text()
    assert dashboard.process.returncode == 0


def test_dashboard_commands_import_neither_ray_nor_torch(sqlite_url: str) -> None:
    open_storage(sqlite_url).engine.dispose()
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from hpo.search._cli import app\n"
        "for args in (['--help'], ['dashboard', '--help']):\n"
        "    result = CliRunner().invoke(app, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "from hpo.search import _dashboard\n"
        "import optuna_dashboard\n"
        "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))\n"
    )

    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )

    assert completed.stdout.strip() == "[]"
