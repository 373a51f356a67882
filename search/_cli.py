"""The ``hpo`` command line.

Each verb gathers its flags, calls a function in `hpo.search` or `hpo.storage`, and renders
the result. Errors derived from `HpoError` become a one-line message and the exit status of
their class in one place, `_reports_errors`; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, ParamSpec

import typer
from rich.console import Console
from rich.table import Table

from hpo.errors import HpoError, UsageError

if TYPE_CHECKING:
    from hpo.search._spec import StudySpec

_logger = logging.getLogger(__name__)

_stdout = Console()
_stderr = Console(stderr=True)
_debug = False
# Optuna's own log format: "[I 2026-12-04 10:00:00,123] Trial 0 finished with value: ...".
_P = ParamSpec("_P")
_LOG_FORMAT = "[%(levelname).1s %(asctime)s] %(message)s"


def _reports_errors(command: Callable[_P, None]) -> Callable[_P, None]:
    """Turn an `HpoError` from `command` into its message on stderr and its class's exit status.

    Every verb is wrapped in this, so it is the one place where errors meet the user.
    """

    @functools.wraps(command)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            command(*args, **kwargs)
        except HpoError as e:
            if _debug:
                _stderr.print(traceback.format_exc(), markup=False, highlight=False)
            _stderr.print(f"error: {e}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from e
        except KeyboardInterrupt as e:
            # Ctrl-C outside the launcher's trial loop, such as while Ray starts.
            _stderr.print("Interrupted.", markup=False, highlight=False)
            raise typer.Exit(130) from e

    return wrapper


app = typer.Typer(
    name="hpo",
    help="Hyperparameter search: Optuna studies in a database, trials on Ray workers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

StudyFileArgument = Annotated[
    Path, typer.Argument(help="The study file (YAML).", metavar="STUDY_FILE", show_default=False)
]
StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="Database URL, such as sqlite:///hpo.db or postgresql+psycopg2://user@host/db. "
        "Defaults to study.storage of a study file given to the command, then $HPO_STORAGE, "
        "then sqlite:///hpo.db.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
VerboseOption = Annotated[
    int, typer.Option("--verbose", "-v", count=True, help="Log more; repeat for debug logs.")
]
DebugOption = Annotated[
    bool, typer.Option("--debug", help="Show the Python traceback of an error.")
]


def main() -> None:
    """Run the ``hpo`` console script."""
    app()


@app.command()
@_reports_errors
def validate(
    study_file: StudyFileArgument,
    verbose: VerboseOption = 0,
    debug: DebugOption = False,
) -> None:
    """Check a study file, its objective and dataset; write nothing."""
    _configure(verbose, debug)
    from hpo.search._launcher import check_spec
    from hpo.search._loader import load_spec

    spec = load_spec(study_file)
    check_spec(spec, spec_path=study_file)
    _stdout.print(
        f"{study_file}: valid. Study {spec.study.name!r}, objective {spec.objective.name}, "
        f"{_count(len(spec.space), 'parameter')} in the file's space, "
        f"sampler {spec.sampler.type}, pruner {spec.pruner.type}, "
        f"{_describe_budget(spec)}.",
        markup=False,
        highlight=False,
    )


@app.command()
@_reports_errors
def launch(
    study_file: StudyFileArgument,
    storage: StorageOption = None,
    n_trials: Annotated[
        int | None,
        typer.Option(
            "--n-trials",
            min=1,
            help="Total number of trials for the study, over every launch; "
            "overrides budget.n_trials.",
            show_default=False,
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Address of a Ray cluster to join; overrides cluster.address. "
            "Without one, a local cluster starts.",
            show_default=False,
        ),
    ] = None,
    allow_space_change: Annotated[
        bool,
        typer.Option(
            "--allow-space-change",
            help="Continue a study even though the study file's search space differs from "
            "the stored one.",
        ),
    ] = False,
    verbose: VerboseOption = 0,
    debug: DebugOption = False,
) -> None:
    """Create or continue a study and run its trials.

    Runs trials until the study's budget is spent, over every launch of it.
    """
    _configure(verbose, debug)
    from hpo.search._launcher import launch as run_launch
    from hpo.search._loader import load_spec
    from hpo.search._progress import LiveProgress, render_summary
    from hpo.storage import resolve_storage_url

    spec = load_spec(study_file)
    storage_url = resolve_storage_url(storage, spec.study.storage)
    # Off a terminal, the live display would print only at the end, and the per-trial log
    # lines already show the progress.
    with LiveProgress(_stderr, enabled=_stderr.is_terminal) as progress:
        result = run_launch(
            spec,
            storage_url=storage_url,
            spec_path=study_file,
            n_trials=n_trials,
            ray_address=ray_address,
            allow_space_change=allow_space_change,
            progress=progress,
        )

    render_summary(_stdout, result)
    if result.interrupted:
        what = (
            "the running trials were cancelled and recorded as failed; each is enqueued again"
            if result.cancelled
            else "the running trials finished"
        )
        _stderr.print(
            f"Launch stopped by Ctrl-C or SIGTERM: {what}. Continue the study with:\n"
            f"  {_continue_command(study_file, storage, n_trials)}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(130)
    if result.ran == 0:
        _stdout.print("No trials were run: the study's budget is already spent.")


@app.command()
@_reports_errors
def status(
    study: Annotated[
        str | None,
        typer.Argument(help="A study name; without one, every study in the storage."),
    ] = None,
    storage: StorageOption = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = 0,
    debug: DebugOption = False,
) -> None:
    """Show trial counts and best values of studies.

    Shows one study, or every study in the storage.
    """
    _configure(verbose, debug)
    from hpo.search._reports import study_status
    from hpo.storage import mask_url, open_storage, resolve_storage_url

    storage_url = resolve_storage_url(storage)
    rows = study_status(open_storage(storage_url, create=False), study, mask_url(storage_url))
    if as_json:
        _stdout.print_json(json.dumps(rows))
        return

    table = Table(title=f"Studies in {mask_url(storage_url)}")
    for column in ("study", "direction", "complete", "pruned", "failed", "running", "best"):
        table.add_column(
            column, justify="right" if column not in ("study", "direction") else "left"
        )
    for row in rows:
        best = row["best_value"]
        table.add_row(
            str(row["study"]),
            ",".join(row["directions"]),
            str(row["complete"]),
            str(row["pruned"]),
            str(row["failed"]),
            str(row["running"]),
            "-" if best is None else f"{best:.6g} (trial {row['best_trial']})",
        )
    _stdout.print(table)


@app.command()
@_reports_errors
def best(
    study: Annotated[str, typer.Argument(help="The study name.", show_default=False)],
    storage: StorageOption = None,
    output_format: Annotated[
        Literal["yaml", "json"],
        typer.Option("--format", help="Output format of the parameters."),
    ] = "yaml",
    verbose: VerboseOption = 0,
    debug: DebugOption = False,
) -> None:
    """Print the best parameters as YAML or JSON.

    The output is ready to paste into training code.
    """
    _configure(verbose, debug)
    import yaml

    from hpo.search._reports import best_parameters
    from hpo.storage import mask_url, open_storage, resolve_storage_url

    storage_url = resolve_storage_url(storage)
    result = best_parameters(open_storage(storage_url, create=False), study, mask_url(storage_url))
    if output_format == "json":
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
    else:
        sys.stdout.write(yaml.safe_dump(result, sort_keys=False))


StudyNameArgument = Annotated[str, typer.Argument(help="The study name.", show_default=False)]


@app.command()
@_reports_errors
def dashboard(
    study_file: Annotated[
        Path | None,
        typer.Argument(
            help="A study file; the dashboard serves its study.storage unless --storage is given.",
            show_default=False,
        ),
    ] = None,
    storage: StorageOption = None,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to listen on. The dashboard has no login, so any address other than "
            "a loopback one needs an authenticating proxy in front.",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port", min=0, max=65535, help="TCP port to listen on; 0 picks a free one."
        ),
    ] = 8080,
    artifact_dir: Annotated[
        Path | None,
        typer.Option(
            "--artifact-dir",
            help="Folder of Optuna's filesystem artifact store, whose files the dashboard shows "
            "on each trial. Defaults to hpo-artifacts beside the SQLite file, or in the current "
            "folder for other databases.",
            show_default=False,
        ),
    ] = None,
    verbose: VerboseOption = 0,
    debug: DebugOption = False,
) -> None:
    """Serve optuna-dashboard on the storage.

    Serves every study in the storage until Ctrl-C.
    """
    _configure(verbose, debug)
    from hpo.search._dashboard import default_artifact_dir, exposure_warning, serve_dashboard
    from hpo.storage import mask_url, open_storage, resolve_storage_url

    from_study_file = None
    if study_file is not None:
        from hpo.search._loader import load_spec

        from_study_file = load_spec(study_file).study.storage
    storage_url = resolve_storage_url(storage, from_study_file)
    opened = open_storage(storage_url, create=False)
    artifacts = artifact_dir or default_artifact_dir(storage_url)

    def announce(url: str) -> None:
        warning = exposure_warning(host)
        if warning is not None:
            _stderr.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)
        _stdout.print(
            f"optuna-dashboard for {mask_url(storage_url)} at {url}\n"
            f"Artifacts in {artifacts.resolve()}. Press Ctrl-C to stop.",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    serve_dashboard(
        opened,
        host=host,
        port=port,
        artifact_dir=artifacts,
        on_ready=announce,
    )


@app.command()
@_reports_errors
def report(
    study: StudyNameArgument,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder to write report.html into, and the PNG files; created if missing.",
            show_default=False,
        ),
    ],
    storage: StorageOption = None,
    png: Annotated[
        bool,
        typer.Option(
            "--png", help="Also write each plot as a PNG file; needs Chrome or Chromium."
        ),
    ] = False,
    verbose: VerboseOption = 0,
    debug: DebugOption = False,
) -> None:
    """Write an HTML report of a study.

    One self-contained page with plots and the top trials.
    """
    _configure(verbose, debug)
    from hpo.search._report import write_report
    from hpo.search._reports import load_study
    from hpo.storage import mask_url, open_storage, resolve_storage_url

    storage_url = resolve_storage_url(storage)
    loaded = load_study(open_storage(storage_url, create=False), study, mask_url(storage_url))
    written = write_report(loaded, out, png=png)

    for plot in written.plots:
        if plot.note is not None:
            _stderr.print(f"{plot.title}: {plot.note}", markup=False, highlight=False)
    _stdout.print(f"Wrote {written.html_path}", markup=False, highlight=False, soft_wrap=True)
    for path in written.png_paths:
        _stdout.print(f"Wrote {path}", markup=False, highlight=False, soft_wrap=True)


@app.command()
@_reports_errors
def trials(
    study: StudyNameArgument,
    storage: StorageOption = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = 0,
    debug: DebugOption = False,
) -> None:
    """List a study's trials.

    Shows state, values, parameters, duration and last reported step.
    """
    _configure(verbose, debug)
    from hpo.search._export import trial_rows
    from hpo.search._reports import load_study
    from hpo.storage import mask_url, open_storage, resolve_storage_url

    storage_url = resolve_storage_url(storage)
    loaded = load_study(open_storage(storage_url, create=False), study, mask_url(storage_url))
    rows = trial_rows(loaded)
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return

    table = Table(title=f"Trials of {study} in {mask_url(storage_url)}")
    for column in ("number", "state", "value", "params", "duration", "last step"):
        justify: Literal["left", "right"] = "left" if column in ("state", "params") else "right"
        table.add_column(column, justify=justify)
    for row in rows:
        table.add_row(
            str(row["number"]),
            str(row["state"]),
            _format_values(row["values"]),
            _format_params(row["params"]),
            "-" if row["duration_s"] is None else f"{row['duration_s']:.1f} s",
            "-" if row["last_step"] is None else str(row["last_step"]),
        )
    _stdout.print(table)


@app.command()
@_reports_errors
def export(
    study: StudyNameArgument,
    storage: StorageOption = None,
    output_format: Annotated[
        Literal["csv", "json"],
        typer.Option(
            "--format",
            help="json contains everything that hpo import needs; csv is one row per trial, "
            "for reading.",
        ),
    ] = "json",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="File to write; standard output without it.", show_default=False
        ),
    ] = None,
    verbose: VerboseOption = 0,
    debug: DebugOption = False,
) -> None:
    """Export a study as JSON or CSV.

    JSON is what hpo import reads; CSV is for reading.
    """
    _configure(verbose, debug)
    from hpo.search._export import export_study
    from hpo.search._reports import load_study
    from hpo.storage import mask_url, open_storage, resolve_storage_url

    storage_url = resolve_storage_url(storage)
    loaded = load_study(open_storage(storage_url, create=False), study, mask_url(storage_url))
    text = export_study(loaded, output_format)
    if out is None:
        sys.stdout.write(text)
        return

    try:
        out.write_text(text, encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot write --out {out}: {e.strerror}") from e
    _stdout.print(
        f"Exported study {study!r} to {out}.", markup=False, highlight=False, soft_wrap=True
    )


@app.command("import")
@_reports_errors
def import_(
    export_file: Annotated[
        Path,
        typer.Argument(
            help="A JSON file written by hpo export --format json.", show_default=False
        ),
    ],
    storage: StorageOption = None,
    study: Annotated[
        str | None,
        typer.Option(
            "--study",
            help="Name of the new study; defaults to the exported study's name.",
            show_default=False,
        ),
    ] = None,
    verbose: VerboseOption = 0,
    debug: DebugOption = False,
) -> None:
    """Import a JSON export as a new study.

    Brings every trial of the export into the storage.
    """
    _configure(verbose, debug)
    from hpo.search._export import import_study, read_export
    from hpo.search._reports import study_status
    from hpo.storage import mask_url, open_storage, resolve_storage_url

    exported = read_export(export_file)
    storage_url = resolve_storage_url(storage)
    target = open_storage(storage_url)
    imported = import_study(
        exported,
        target,
        source=str(export_file),
        study_name=study,
        masked_url=mask_url(storage_url),
    )

    (row,) = study_status(target, imported.study_name, mask_url(storage_url))
    _stdout.print(
        f"Imported study {imported.study_name!r} into {mask_url(storage_url)}: "
        f"{len(exported.trials)} trials ({row['complete']} complete, {row['pruned']} pruned, "
        f"{row['failed']} failed, {row['waiting']} waiting).",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


storage_app = typer.Typer(
    name="storage",
    help="Check or upgrade the Optuna schema of a study database.",
    no_args_is_help=True,
)
app.add_typer(storage_app)


@storage_app.command("check")
@_reports_errors
def storage_check(
    storage: StorageOption = None,
    as_json: JsonOption = False,
    verbose: VerboseOption = 0,
    debug: DebugOption = False,
) -> None:
    """Check the database and its schema.

    Shows whether it is reachable, its schema version and its number of studies.
    """
    _configure(verbose, debug)
    from hpo.storage import check_storage, resolve_storage_url

    report = check_storage(resolve_storage_url(storage))
    if as_json:
        _stdout.print_json(
            json.dumps(dataclasses.asdict(report) | {"up_to_date": report.up_to_date})
        )
        return

    current = report.current_version or "none (empty database)"
    verdict = "up to date" if report.up_to_date else "run `hpo storage upgrade`"
    if report.current_version is None:
        verdict = "the first launch creates the schema"
    _stdout.print(
        f"{report.url}: reachable; schema {current}, this Optuna writes {report.head_version} "
        f"({verdict}); {_count(report.studies, 'study', 'studies')}.",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@storage_app.command("upgrade")
@_reports_errors
def storage_upgrade(
    storage: StorageOption = None,
    verbose: VerboseOption = 0,
    debug: DebugOption = False,
) -> None:
    """Upgrade the database's Optuna schema.

    Migrates to the schema of the installed Optuna.
    """
    _configure(verbose, debug)
    from hpo.storage import mask_url, resolve_storage_url, upgrade_storage

    url = resolve_storage_url(storage)
    before, after = upgrade_storage(url)
    if before == after:
        message = f"{mask_url(url)}: schema {after} is already up to date."
    else:
        message = f"{mask_url(url)}: schema upgraded from {before} to {after}."
    _stdout.print(message, markup=False, highlight=False, soft_wrap=True)


def _configure(verbose: int, debug: bool) -> None:
    """Set up logging for a command: hpo's and Optuna's records go to stderr.

    On a terminal the records go through Rich, so they scroll above the live progress display;
    elsewhere they are plain lines in Optuna's own format, so logs of both tools grep alike.
    """
    import optuna
    from rich.logging import RichHandler

    global _debug
    _debug = debug

    handler: logging.Handler
    if _stderr.is_terminal:
        handler = RichHandler(
            console=_stderr, show_time=False, show_level=False, show_path=False, markup=False
        )
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_LOG_FORMAT))

    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("hpo").setLevel(logging.DEBUG if verbose >= 2 or debug else logging.INFO)

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(logging.INFO if verbose >= 1 else logging.WARNING)


def _count(number: int, noun: str, plural: str | None = None) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {plural or noun + 's'}"


def _describe_budget(spec: StudySpec) -> str:
    parts = []
    if spec.budget.n_trials is not None:
        parts.append(f"{spec.budget.n_trials} trials")
    if spec.budget.timeout is not None:
        parts.append(f"at most {spec.budget.timeout:g} s")
    parts.append(f"{spec.resources.parallelism} at once")
    return ", ".join(parts)


def _continue_command(study_file: Path, storage: str | None, n_trials: int | None) -> str:
    """Return the command that continues a launch; a password in the URL stays masked."""
    from hpo.storage import mask_url

    command = f"hpo launch {study_file}"
    if storage:
        command += f" --storage '{mask_url(storage)}'"
    if n_trials is not None:
        command += f" --n-trials {n_trials}"
    return command


def _format_values(values: object) -> str:
    if not isinstance(values, list):
        return "-"
    return ", ".join(
        f"{value:.6g}" if isinstance(value, float) else str(value) for value in values
    )


def _format_params(params: object) -> str:
    if not isinstance(params, dict):
        return ""
    return ", ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in params.items()
    )
