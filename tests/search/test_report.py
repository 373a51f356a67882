"""`hpo report`: a self-contained HTML page and PNG files of a study's plots."""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
import struct
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial
from typer.testing import CliRunner

from hpo.search._cli import app
from hpo.search._report import pruning_savings

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PLOTS = ("optimization_history", "intermediate_values", "param_importances", "parallel_coordinate")

DIGITS_STUDY = """
    study:
      name: digits-report
      direction: maximize
      metric: val_accuracy
    objective:
      name: cnn
      args: {dataset: digits, epochs: 3, width: 8}
    space:
      # A learning rate of 1e-6 stays at chance, so the median pruner stops such trials.
      lr: {type: categorical, choices: [0.02, 0.000001]}
      dropout: {type: categorical, choices: [0.0, 0.1]}
    sampler: {type: grid, seed: 0}
    pruner: {type: median, n_startup_trials: 2, n_warmup_steps: 0}
    budget:
      n_trials: 4
    resources:
      parallelism: 1
"""


@pytest.fixture(autouse=True)
def restore_root_logging() -> Iterator[None]:
    """Put back the root logger's handlers, which each CLI call replaces with its own.

    A handler left behind writes to the closed output stream of an earlier CliRunner call.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers = handlers
    root.setLevel(level)


class _ExternalReferences(HTMLParser):
    """Collect every URL that a tag would load from the network when the page opens."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        for name, value in attrs:
            if name in ("src", "href") and value and re.match(r"(?i)(https?:)?//", value):
                self.external.append(f"<{tag} {name}={value}>")


def external_references(page: str) -> _ExternalReferences:
    parser = _ExternalReferences()
    parser.feed(page)
    return parser


def chromium_or_skip() -> str:
    """Return Debian's chromium, which kaleido and the tests use; skip without it outside CI."""
    chromium = shutil.which("chromium")
    if chromium is not None:
        return chromium
    reason = "chromium is not installed (apt-get install chromium; scripts/test installs it)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG file"
    assert data[12:16] == b"IHDR", f"{path} has no IHDR chunk first"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def element_text(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">([^<]*)<', page)
    assert found, f"no element with id {element_id!r} on the page"
    return found.group(1)


def savings_from_database(database: Path, study_name: str) -> tuple[int, int]:
    """Count reported steps of complete and pruned trials straight from Optuna's tables."""
    with sqlite3.connect(database) as connection:
        steps = [
            count
            for (count,) in connection.execute(
                """
                SELECT COUNT(v.trial_intermediate_value_id)
                FROM trials AS t
                JOIN studies AS s ON s.study_id = t.study_id
                LEFT JOIN trial_intermediate_values AS v ON v.trial_id = t.trial_id
                WHERE s.study_name = ? AND t.state IN ('COMPLETE', 'PRUNED')
                GROUP BY t.trial_id
                """,
                (study_name,),
            )
        ]
    return sum(steps), len(steps) * max(steps)


def make_pruned_study(storage_url: str) -> optuna.Study:
    """Create a study in this process whose sinking trials the median pruner stops."""
    study = optuna.create_study(
        study_name="climbing",
        storage=storage_url,
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        y = trial.suggest_int("y", 1, 5)
        slope = 1.0 if trial.number % 2 == 0 else -1.0
        for step in range(5):
            trial.report(slope * step + x, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return slope * 4 + x + y

    study.optimize(objective, n_trials=10)
    return study


# --- Pruning savings --------------------------------------------------------------------------


def test_pruning_savings_counts_complete_and_pruned() -> None:
    distributions = {"x": FloatDistribution(0.0, 1.0)}

    def trial(state: TrialState, steps: int) -> optuna.trial.FrozenTrial:
        return create_trial(
            state=state,
            value=0.5 if state == TrialState.COMPLETE else None,
            params={"x": 0.5},
            distributions=distributions,
            intermediate_values={step: 0.1 for step in range(steps)},
        )

    savings = pruning_savings(
        [
            trial(TrialState.COMPLETE, 4),
            trial(TrialState.COMPLETE, 4),
            trial(TrialState.PRUNED, 1),
            trial(TrialState.FAIL, 2),
            trial(TrialState.RUNNING, 3),
        ]
    )

    assert savings.trials == 3
    assert savings.epochs_run == 9
    assert savings.max_epochs == 4
    assert savings.epochs_without_pruning == 12
    assert savings.epochs_saved == 3
    assert savings.saved_fraction == pytest.approx(0.25)


def test_pruning_savings_without_trials() -> None:
    savings = pruning_savings([])

    assert savings.epochs_without_pruning == 0
    assert savings.saved_fraction == 0.0


# --- Reports ----------------------------------------------------------------------------------


def test_report_on_digits_study(ray_cluster: None, sqlite_url: str, tmp_path: Path) -> None:
    chromium_or_skip()
    study_file = tmp_path / "digits.yaml"
    study_file.write_text(textwrap.dedent(DIGITS_STUDY))
    launched = CliRunner().invoke(app, ["launch", str(study_file), "--storage", sqlite_url])
    assert launched.exit_code == 0, launched.output
    out = tmp_path / "report"

    result = CliRunner().invoke(
        app, ["report", "digits-report", "--storage", sqlite_url, "--out", str(out), "--png"]
    )

    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    references = external_references(page)
    assert references.external == []
    assert references.tags["script"] >= 5, "plotly.js and one script per plot"
    assert "link" not in references.tags
    for plot in PLOTS:
        assert png_size(out / f"{plot}.png") == (1000, 520)
    study = optuna.load_study(study_name="digits-report", storage=sqlite_url)
    pruned = [trial for trial in study.trials if trial.state == TrialState.PRUNED]
    assert pruned, "a trial at learning rate 1e-6 should be pruned"
    for trial in pruned:
        assert f"trial {trial.number} (pruned)" in page
    epochs_run, without_pruning = savings_from_database(
        Path(sqlite_url.removeprefix("sqlite:///")), "digits-report"
    )
    assert int(element_text(page, "epochs-run")) == epochs_run
    assert int(element_text(page, "epochs-without-pruning")) == without_pruning
    assert int(element_text(page, "epochs-saved")) == without_pruning - epochs_run
    assert "epochs run = sum over complete and pruned trials" in page


def test_report_opens_offline_in_chromium(tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    storage_url = f"sqlite:///{tmp_path}/hpo.db"
    make_pruned_study(storage_url)
    out = tmp_path / "report"
    written = CliRunner().invoke(
        app, ["report", "climbing", "--storage", storage_url, "--out", str(out)]
    )
    assert written.exit_code == 0, written.output

    # A proxy that does not exist makes any network request fail, so the page must load
    # everything from the file itself.
    completed = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--proxy-server=http://127.0.0.1:9",
            "--virtual-time-budget=10000",
            "--dump-dom",
            (out / "report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )

    dom = completed.stdout
    assert "Training saved by pruning" in dom
    # plotly.js draws each figure into an SVG of class main-svg; without the script there is none.
    assert dom.count('class="main-svg"') >= len(PLOTS)


def test_report_notes_skipped_plots(tmp_path: Path) -> None:
    storage_url = f"sqlite:///{tmp_path}/hpo.db"
    study = optuna.create_study(study_name="tiny", storage=storage_url)
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=1)
    out = tmp_path / "report"

    result = CliRunner().invoke(
        app, ["report", "tiny", "--storage", storage_url, "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    assert "Parameter importances: Skipped: parameter importances need at least 2" in result.output
    assert "Intermediate values: No trial reported intermediate values." in result.output
    page = (out / "report.html").read_text()
    assert "need at least 2 complete trials, and the study has 1" in page
    assert "No complete or pruned trial reported intermediate values." in page
    assert list(out.glob("*.png")) == []


def test_report_one_parameter_skips_importances(tmp_path: Path) -> None:
    storage_url = f"sqlite:///{tmp_path}/hpo.db"
    study = optuna.create_study(study_name="one-param", storage=storage_url)
    study.optimize(lambda trial: trial.suggest_float("x", 0.0, 1.0), n_trials=3)
    out = tmp_path / "report"

    result = CliRunner().invoke(
        app, ["report", "one-param", "--storage", storage_url, "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert "importances compare parameters that every complete trial has, and there is 1" in page
    assert "Top 3 trials" in page


def test_report_multi_objective(tmp_path: Path) -> None:
    storage_url = f"sqlite:///{tmp_path}/hpo.db"
    study = optuna.create_study(
        study_name="pareto", storage=storage_url, directions=["maximize", "minimize"]
    )
    study.optimize(
        lambda trial: (trial.suggest_float("a", 0.0, 1.0), trial.suggest_int("b", 1, 9)),
        n_trials=6,
    )
    out = tmp_path / "report"

    result = CliRunner().invoke(
        app, ["report", "pareto", "--storage", storage_url, "--out", str(out)]
    )

    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert ">Pareto front</h2>" in page
    assert "Parallel coordinates, colored by Objective 0" in page
    assert external_references(page).external == []


def test_report_png_without_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage_url = f"sqlite:///{tmp_path}/hpo.db"
    make_pruned_study(storage_url)
    out = tmp_path / "report"
    missing = tmp_path / "no-chrome"
    monkeypatch.setenv("BROWSER_PATH", str(missing))

    result = CliRunner().invoke(
        app, ["report", "climbing", "--storage", storage_url, "--out", str(out), "--png"]
    )

    assert result.exit_code == 1
    first_line = result.output.splitlines()[0]
    assert first_line.startswith("error: cannot write PNG files: kaleido needs Chrome")
    assert f"BROWSER_PATH={missing} is not one" in first_line
    assert (out / "report.html").exists()


def test_report_unknown_study(tmp_path: Path) -> None:
    storage_url = f"sqlite:///{tmp_path}/hpo.db"
    optuna.create_study(study_name="known", storage=storage_url)

    result = CliRunner().invoke(
        app, ["report", "missing", "--storage", storage_url, "--out", str(tmp_path / "r")]
    )

    assert result.exit_code == 2
    assert result.output.startswith("error: study 'missing' not found in sqlite:///")
    assert not (tmp_path / "r").exists()


def test_report_out_is_file(tmp_path: Path) -> None:
    storage_url = f"sqlite:///{tmp_path}/hpo.db"
    optuna.create_study(study_name="known", storage=storage_url)
    not_a_folder = tmp_path / "report.txt"
    not_a_folder.write_text("")

    result = CliRunner().invoke(
        app, ["report", "known", "--storage", storage_url, "--out", str(not_a_folder)]
    )

    assert result.exit_code == 2
    assert result.output.startswith(f"error: --out {not_a_folder} is a file")


def test_report_imports_neither_ray_nor_torch(tmp_path: Path) -> None:
    storage_url = f"sqlite:///{tmp_path}/hpo.db"
    make_pruned_study(storage_url)
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from hpo.search._cli import app\n"
        f"args = ['report', 'climbing', '--storage', {storage_url!r}, "
        f"'--out', {str(tmp_path / 'report')!r}]\n"
        "result = CliRunner().invoke(app, args)\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))\n"
    )

    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )

    assert completed.stdout.strip() == "[]"
