"""Trials as rows, studies as CSV or JSON exports, and JSON exports imported as new studies.

The JSON export contains everything that Optuna's public API can write back: the study's
directions, metric names and user attributes, and every trial with its state, parameters and
their distributions, values, intermediate values, user and system attributes and datetimes.
`import_study` rebuilds the study from it with `optuna.trial.create_trial` and
`Study.add_trials`, so trial numbers stay the same. The CSV export is for reading only.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import warnings
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from hpo.errors import UsageError

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

_logger = logging.getLogger(__name__)

EXPORT_FORMAT: Literal["hpo-study-export"] = "hpo-study-export"
EXPORT_VERSION: Literal[1] = 1
# System attribute on an imported trial that was RUNNING when the study was exported. Nothing
# runs it in the new storage, so it is imported as FAIL and this attribute keeps the old state.
SYSTEM_ATTR_EXPORTED_STATE = "hpo:exported_state"
# The same user attribute that the launcher writes on a failed trial.
ATTR_FAIL_REASON = "fail_reason"
_RUNNING_FAIL_REASON = "the trial was running when the study was exported; imported as failed"
# At most this many validation problems of an export file are listed in one error.
_MAX_PROBLEMS = 10

ExportFormat = Literal["csv", "json"]
ParamValue = bool | int | float | str | None


class _Model(BaseModel):
    # Python's json module writes inf and NaN as Infinity and NaN, and reads them back.
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class ExportedDistribution(_Model):
    """A parameter's distribution as `optuna.distributions.distribution_to_json` writes it."""

    name: str
    attributes: dict[str, JsonValue]


class ExportedTrial(_Model):
    """One trial of an export."""

    number: int = Field(ge=0)
    state: Literal["COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"]
    values: list[float] | None = None
    params: dict[str, ParamValue] = Field(default_factory=dict)
    distributions: dict[str, ExportedDistribution] = Field(default_factory=dict)
    intermediate_values: dict[int, float] = Field(default_factory=dict)
    user_attrs: dict[str, JsonValue] = Field(default_factory=dict)
    system_attrs: dict[str, JsonValue] = Field(default_factory=dict)
    datetime_start: datetime | None = None
    datetime_complete: datetime | None = None


class ExportedStudySection(_Model):
    """The study's own settings in an export."""

    name: str = Field(min_length=1)
    directions: list[Literal["minimize", "maximize"]] = Field(min_length=1)
    metric_names: list[str] | None = None
    user_attrs: dict[str, JsonValue] = Field(default_factory=dict)


class StudyExport(_Model):
    """A whole study as `hpo export --format json` writes it and `hpo import` reads it."""

    format: Literal["hpo-study-export"] = EXPORT_FORMAT
    version: Literal[1] = EXPORT_VERSION
    exported_at: datetime
    study: ExportedStudySection
    trials: list[ExportedTrial]


def trial_rows(study: optuna.Study) -> list[dict[str, JsonValue]]:
    """Return one row per trial: number, state, values, parameters, duration and last step."""
    rows: list[dict[str, JsonValue]] = []
    for trial in study.get_trials(deepcopy=False):
        values: list[JsonValue] | None = None if trial.values is None else list(trial.values)
        params: dict[str, JsonValue] = dict(trial.params)
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "values": values,
                "params": params,
                "duration_s": _duration_s(trial),
                "last_step": trial.last_step,
            }
        )
    return rows


def export_study(study: optuna.Study, output_format: ExportFormat) -> str:
    """Return the study as the text of a JSON export or of a CSV table, one row per trial."""
    if output_format == "json":
        return to_export(study).model_dump_json(indent=2) + "\n"
    return _to_csv(study)


def to_export(study: optuna.Study) -> StudyExport:
    """Collect the study and all of its trials into a `StudyExport`."""
    from optuna.distributions import distribution_to_json

    trials = []
    for trial in study.get_trials(deepcopy=False):
        distributions = {
            name: ExportedDistribution.model_validate_json(distribution_to_json(distribution))
            for name, distribution in trial.distributions.items()
        }
        trials.append(
            ExportedTrial(
                number=trial.number,
                state=trial.state.name,  # type: ignore[arg-type]
                values=trial.values,
                params=trial.params,
                distributions=distributions,
                intermediate_values=trial.intermediate_values,
                user_attrs=trial.user_attrs,
                system_attrs=trial.system_attrs,
                datetime_start=trial.datetime_start,
                datetime_complete=trial.datetime_complete,
            )
        )

    return StudyExport(
        exported_at=datetime.now(),
        study=ExportedStudySection(
            name=study.study_name,
            directions=[direction.name.lower() for direction in study.directions],  # type: ignore[misc]
            metric_names=study.metric_names,
            user_attrs=study.user_attrs,
        ),
        trials=trials,
    )


def read_export(path: Path) -> StudyExport:
    """Read and validate a JSON export; a missing or invalid file raises `UsageError`."""
    hint = "pass a file written by `hpo export STUDY --format json --out FILE`"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise UsageError(f"export file {path} not found; {hint}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read export file {path}: {e}; {hint}") from e

    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"invalid export file {path}:{e.lineno}:{e.colno}: not JSON ({e.msg}); "
            f"hpo import reads only JSON exports, so {hint}"
        ) from e

    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise UsageError(
            f'invalid export file {path}: "format" must be "{EXPORT_FORMAT}", '
            f"but the file is other JSON; {hint}"
        )
    if data.get("version") != EXPORT_VERSION:
        raise UsageError(
            f"invalid export file {path}: export version {data.get('version')!r} is not "
            f"supported; this hpo reads version {EXPORT_VERSION}"
        )

    try:
        return StudyExport.model_validate(data)
    except ValidationError as e:
        raise UsageError(f"invalid export file {path}:\n" + "\n".join(_problems(e))) from e


def import_study(
    export: StudyExport,
    storage: optuna.storages.BaseStorage,
    *,
    source: str,
    study_name: str | None,
    masked_url: str,
) -> optuna.Study:
    """Create a new study from `export` in `storage`, named `study_name` or as exported.

    Every trial is checked before the study is created, so a bad trial writes nothing. A study
    of that name in `storage` raises `UsageError`. A trial that was RUNNING is imported as
    FAIL, because nothing runs it in the new storage; WAITING trials stay queued.
    """
    import optuna

    name = study_name or export.study.name
    trials = [_to_frozen_trial(trial, export, source) for trial in export.trials]
    if [trial.number for trial in export.trials] != list(range(len(export.trials))):
        _logger.warning(
            "The trials in %s are not numbered 0 to %d in order; they are renumbered in "
            "export order.",
            source,
            len(export.trials) - 1,
        )

    try:
        study = optuna.create_study(
            study_name=name, storage=storage, directions=list(export.study.directions)
        )
    except optuna.exceptions.DuplicatedStudyError as e:
        raise UsageError(
            f"study {name!r} already exists in {masked_url}; pass --study NEW_NAME to import "
            "it under another name"
        ) from e

    try:
        _fill_study(study, export, trials)
    except BaseException:
        # A half-imported study would block the next import under the same name.
        optuna.delete_study(study_name=name, storage=storage)
        raise
    return study


def _fill_study(study: optuna.Study, export: StudyExport, trials: list[FrozenTrial]) -> None:
    import optuna

    if export.study.metric_names is not None:
        # Study.set_metric_names is marked experimental since Optuna 3.2 and still is in 5.1.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(export.study.metric_names)
    for key, value in export.study.user_attrs.items():
        study.set_user_attr(key, value)
    study.add_trials(trials)


def _to_frozen_trial(trial: ExportedTrial, export: StudyExport, source: str) -> FrozenTrial:
    """Build the trial that `Study.add_trial` takes; invalid contents raise `UsageError`."""
    from optuna.distributions import json_to_distribution
    from optuna.trial import TrialState, create_trial

    where = f"invalid export file {source}: trial {trial.number}"
    state = TrialState[trial.state]
    user_attrs = dict(trial.user_attrs)
    system_attrs = dict(trial.system_attrs)
    datetime_complete = trial.datetime_complete
    if state == TrialState.RUNNING:
        state = TrialState.FAIL
        system_attrs[SYSTEM_ATTR_EXPORTED_STATE] = TrialState.RUNNING.name
        user_attrs.setdefault(ATTR_FAIL_REASON, _RUNNING_FAIL_REASON)
        datetime_complete = export.exported_at

    n_objectives = len(export.study.directions)
    if trial.values is not None and len(trial.values) != n_objectives:
        raise UsageError(
            f"{where}: values must have {n_objectives} entries, one per direction, "
            f"but got {trial.values}"
        )

    try:
        distributions = {
            name: json_to_distribution(distribution.model_dump_json())
            for name, distribution in trial.distributions.items()
        }
        frozen = create_trial(
            state=state,
            values=trial.values,
            params=trial.params,
            distributions=distributions,
            user_attrs=user_attrs,
            system_attrs=system_attrs,
            intermediate_values=trial.intermediate_values,
        )
    except (ValueError, TypeError, KeyError) as e:
        raise UsageError(f"{where}: {e}") from e

    # create_trial stamps the current time, so the exported datetimes go in afterwards.
    if state != TrialState.WAITING and trial.datetime_start is not None:
        frozen.datetime_start = trial.datetime_start
    if state.is_finished() and datetime_complete is not None:
        frozen.datetime_complete = datetime_complete
    return frozen


def _problems(error: ValidationError) -> list[str]:
    from hpo.search._loader import dotted

    problems = []
    for details in error.errors()[:_MAX_PROBLEMS]:
        where = dotted(tuple(details["loc"])) or "(top level)"
        problems.append(f"{where}: {details['msg']}, but got {details['input']!r:.80}")
    if error.error_count() > _MAX_PROBLEMS:
        problems.append(f"... and {error.error_count() - _MAX_PROBLEMS} more problems")
    return problems


def _to_csv(study: optuna.Study) -> str:
    trials = study.get_trials(deepcopy=False)
    value_columns = _value_columns(study)
    param_names = sorted({name for trial in trials for name in trial.params})
    attr_names = sorted({name for trial in trials for name in trial.user_attrs})
    header = [
        "number",
        "state",
        *value_columns,
        *(f"params_{name}" for name in param_names),
        *(f"user_attrs_{name}" for name in attr_names),
        "datetime_start",
        "datetime_complete",
        "duration_s",
        "last_step",
    ]

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for trial in trials:
        values = trial.values or [None] * len(value_columns)
        writer.writerow(
            [
                trial.number,
                trial.state.name,
                *(_cell(value) for value in values),
                *(_cell(trial.params.get(name)) for name in param_names),
                *(_cell(trial.user_attrs.get(name)) for name in attr_names),
                _cell(trial.datetime_start),
                _cell(trial.datetime_complete),
                _cell(_duration_s(trial)),
                _cell(trial.last_step),
            ]
        )
    return buffer.getvalue()


def _value_columns(study: optuna.Study) -> list[str]:
    names = study.metric_names
    if len(study.directions) == 1 and names is None:
        return ["value"]
    if names is None:
        names = [str(index) for index in range(len(study.directions))]
    return [f"values_{name}" for name in names]


def _cell(value: object) -> object:
    """Write None as an empty cell, datetimes in ISO 8601 and lists or dicts as JSON."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return value


def _duration_s(trial: FrozenTrial) -> float | None:
    duration = trial.duration
    return None if duration is None else round(duration.total_seconds(), 3)
