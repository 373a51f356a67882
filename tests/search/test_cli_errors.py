"""Bad input to `hpo launch`: a clear first line, the right exit status, nothing written."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from hpo.search._cli import app

VALID = """
study:
  name: bad-input
  direction: maximize
objective:
  name: cnn
  args: {dataset: digits, epochs: 1}
space:
  lr: {type: float, low: 0.001, high: 0.1, log: true}
sampler:
  type: tpe
budget:
  n_trials: 2
"""

BAD_STUDY_FILES = [
    pytest.param(
        VALID.replace("n_trials: 2", "n_trails: 2"),
        r"study\.yaml:\d+: budget\.n_trails: unknown key; did you mean 'n_trials'\?",
        id="misspelt-key",
    ),
    pytest.param(
        VALID.replace("low: 0.001, high: 0.1, log: true", "low: 0.5, high: 0.1"),
        r"study\.yaml:\d+: space\.lr: low must be <= high, but got low=0\.5, high=0\.1",
        id="low-above-high",
    ),
    pytest.param(
        VALID.replace("low: 0.001", "low: 0.0"),
        r"study\.yaml:\d+: space\.lr: log scale needs low > 0, but got low=0\.0",
        id="log-with-zero-low",
    ),
    pytest.param(
        VALID.replace("type: tpe", "type: tpee"),
        r"study\.yaml:\d+: sampler\.type: must be one of .*but got 'tpee'",
        id="unknown-sampler",
    ),
]


def invoke_launch(study_file: Path, storage_url: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["launch", str(study_file), "--storage", storage_url])
    return result.exit_code, result.output


@pytest.mark.parametrize(("text", "expected"), BAD_STUDY_FILES)
def test_bad_study_file_rejected(tmp_path: Path, text: str, expected: str) -> None:
    study_file = tmp_path / "study.yaml"
    study_file.write_text(text)
    database = tmp_path / "hpo.db"

    exit_code, output = invoke_launch(study_file, f"sqlite:///{database}")

    first_line = output.splitlines()[0]
    assert exit_code == 2
    assert re.fullmatch(f"error: .*{expected}.*", first_line), output
    assert "Traceback" not in output
    assert not database.exists()


def test_missing_objective_module(tmp_path: Path) -> None:
    study_file = tmp_path / "study.yaml"
    study_file.write_text(VALID.replace("name: cnn", "name: no_such_package.module:objective"))
    database = tmp_path / "hpo.db"

    exit_code, output = invoke_launch(study_file, f"sqlite:///{database}")

    assert exit_code == 2
    assert output.startswith("error: ")
    assert "no_such_package" in output.splitlines()[0]
    assert "Traceback" not in output
    assert not database.exists()


def test_dataset_folder_without_idx_files(tmp_path: Path) -> None:
    empty = tmp_path / "mnist"
    empty.mkdir()
    study_file = tmp_path / "study.yaml"
    study_file.write_text(
        VALID.replace("{dataset: digits, epochs: 1}", f"{{dataset: mnist, data_dir: '{empty}'}}")
    )
    database = tmp_path / "hpo.db"

    exit_code, output = invoke_launch(study_file, f"sqlite:///{database}")

    assert exit_code == 2
    first_line = output.splitlines()[0]
    assert first_line.startswith("error: ")
    assert str(empty) in first_line
    assert "train-images-idx3-ubyte" in output
    assert not database.exists()


def test_unreachable_postgres_masks_password(tmp_path: Path) -> None:
    study_file = tmp_path / "study.yaml"
    study_file.write_text(VALID)
    url = "postgresql+psycopg2://hpo:s3cret-pw@127.0.0.1:1/hpo"

    exit_code, output = invoke_launch(study_file, url)

    assert exit_code == 1
    first_line = output.splitlines()[0]
    assert first_line.startswith("error: cannot reach the database at")
    assert "127.0.0.1" in first_line
    assert "s3cret-pw" not in output
    assert "hpo:***@127.0.0.1" in output


def test_validate_prints_summary(tmp_path: Path) -> None:
    study_file = tmp_path / "study.yaml"
    study_file.write_text(textwrap.dedent(VALID))

    result = CliRunner().invoke(app, ["validate", str(study_file)])

    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{study_file}: valid.")
    assert "1 parameter in the file's space" in result.output


def test_status_of_unknown_study(tmp_path: Path) -> None:
    database = tmp_path / "hpo.db"
    optuna.create_study(study_name="known", storage=f"sqlite:///{database}")

    result = CliRunner().invoke(app, ["status", "missing", "--storage", f"sqlite:///{database}"])

    assert result.exit_code == 2
    assert result.output.startswith("error: study 'missing' not found in sqlite:///")
    assert "studies there: known" in result.output


def test_status_without_database_writes_nothing(tmp_path: Path) -> None:
    database = tmp_path / "hpo.db"

    result = CliRunner().invoke(app, ["status", "--storage", f"sqlite:///{database}"])

    assert result.exit_code == 1
    assert result.output.startswith("error: no study database at")
    assert not database.exists()


def test_validate_imports_neither_ray_nor_torch(tmp_path: Path) -> None:
    study_file = tmp_path / "study.yaml"
    study_file.write_text(VALID)
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from hpo.search._cli import app\n"
        f"result = CliRunner().invoke(app, ['validate', {str(study_file)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))\n"
    )

    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )

    assert completed.stdout.strip() == "[]"


def test_validate_checks_objective_import(tmp_path: Path) -> None:
    study_file = tmp_path / "study.yaml"
    study_file.write_text(VALID.replace("name: cnn", "name: no_such_package.module:objective"))

    result = CliRunner().invoke(app, ["validate", str(study_file)])

    assert result.exit_code == 2
    assert result.output.startswith("error: ")
    assert "no_such_package" in result.output.splitlines()[0]


def test_relative_data_dir_follows_study_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "sweeps"
    (folder / "mnist").mkdir(parents=True)
    study_file = folder / "study.yaml"
    study_file.write_text(
        VALID.replace("{dataset: digits, epochs: 1}", "{dataset: mnist, data_dir: mnist}")
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    result = CliRunner().invoke(app, ["validate", str(study_file)])

    assert result.exit_code == 2
    first_line = result.output.splitlines()[0]
    assert str(folder / "mnist") in first_line
    assert "has no IDX files" in first_line
