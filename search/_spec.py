"""Models of the study file.

Each section of `study.yaml` is a frozen pydantic model that rejects unknown keys. Checks that
involve one section live in that section's validators, and checks across sections live in
`StudySpec`. A failed check raises `PydanticCustomError` with the final wording in its context,
so the loader can print it unchanged. `PROBLEM` carries one message for the validator's location,
and `PROBLEMS` carries several, each with a key path relative to that location.

This module imports neither Optuna nor Ray, so `hpo validate` stays light.
"""

from __future__ import annotations

import re
import string
import zoneinfo
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    JsonValue,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

PROBLEM = "hpo_problem"
PROBLEMS = "hpo_problems"

STUDY_NAME_PLACEHOLDERS = ("date", "time", "datetime")
SWEEP_NAME_PLACEHOLDERS = ("study", "date", "time", "datetime")

Direction = Literal["minimize", "maximize"]
# The value types that Optuna's CategoricalDistribution accepts.
CategoricalChoice = bool | int | float | str | None
KeyPath = tuple[str | int, ...]

_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PATTERN = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def problem(message: str) -> PydanticCustomError:
    """Build a validation error whose message is printed as written."""
    return PydanticCustomError(PROBLEM, "{message}", {"message": message})


def problems(found: Sequence[tuple[KeyPath, str]]) -> PydanticCustomError:
    """Build one validation error that carries several (relative key path, message) pairs."""
    return PydanticCustomError(
        PROBLEMS, "{count} problems", {"count": len(found), "problems": found}
    )


def show(value: object) -> str:
    """Format a value from the study file for a message: 'text', 3, 0.1, true, null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value)


def same_choice(left: object, right: object) -> bool:
    """Compare two parameter values without treating true as 1 or false as 0."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    return left == right


def is_multiple(low: float, high: float, step: float) -> bool:
    """Check whether `high - low` is a whole number of steps, in decimal arithmetic like Optuna."""
    return (Decimal(str(high)) - Decimal(str(low))) % Decimal(str(step)) == 0


class _Section(BaseModel):
    # Numbers are accepted where text is expected, because YAML reads `name: 2024` as an int.
    model_config = ConfigDict(
        extra="forbid", frozen=True, coerce_numbers_to_str=True, allow_inf_nan=False
    )


# Placeholders in names


def _placeholder_problems(template: str, allowed: Sequence[str]) -> list[str]:
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return [f"must use {{...}} placeholders with matching braces, but got {template!r}"]

    found = []
    for _, field, spec, conversion in fields:
        if field is None:
            continue
        if field not in allowed or spec or conversion:
            names = ", ".join(f"{{{name}}}" for name in allowed)
            raw = (
                "{"
                + field
                + (f"!{conversion}" if conversion else "")
                + (f":{spec}" if spec else "")
                + "}"
            )
            found.append(
                f"placeholders must be one of {names}, but got {raw}; write {{{{ for a brace"
            )
    return found


def render_study_name(template: str, now: datetime, *, study: str | None = None) -> str:
    """Fill the {date}, {time}, {datetime} and {study} placeholders of a study name.

    `now` should be timezone-aware when the name belongs to a scheduled sweep, so the date is the
    schedule's date. Raises ValueError when the template uses {study} and `study` is None.
    """
    values = {
        "date": now.strftime("%Y-%m-%d"),
        "time": now.strftime("%H-%M-%S"),
        "datetime": now.strftime("%Y-%m-%dT%H-%M-%S"),
    }
    if study is not None:
        values["study"] = study
    try:
        return template.format(**values)
    except KeyError as error:
        raise ValueError(f"study name template {template!r} needs a value for {error}") from error


# study:


def _to_metric(value: object) -> object:
    if isinstance(value, str):
        return value
    if _is_number(value):
        return str(value)
    if isinstance(value, list) and all(
        isinstance(item, str) or _is_number(item) for item in value
    ):
        return [str(item) for item in value]
    raise problem(f"must be a name or a list of names, but got {show(value)}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class StudySection(_Section):
    """The `study:` section: the Optuna study's name, storage, directions and metric names."""

    name: str = Field(min_length=1)
    storage: str | None = None
    direction: Direction | None = None
    directions: tuple[Direction, ...] | None = Field(default=None, min_length=1)
    metric: Annotated[str | tuple[str, ...], BeforeValidator(_to_metric)] = "value"
    tags: dict[str, str] = Field(default_factory=dict)
    # Seconds between heartbeats of running trials, and how old the last heartbeat of a RUNNING
    # trial may be before the next launcher fails and retries it (Optuna's RDBStorage names).
    heartbeat_interval: int = Field(default=10, ge=1)
    grace_period: int = Field(default=60, ge=2)

    @field_validator("name")
    @classmethod
    def _check_placeholders(cls, name: str) -> str:
        found = _placeholder_problems(name, STUDY_NAME_PLACEHOLDERS)
        if found:
            raise problems([((), message) for message in found])
        return name

    @model_validator(mode="after")
    def _check_objectives(self) -> StudySection:
        found: list[tuple[KeyPath, str]] = []
        if self.direction is not None and self.directions is not None:
            found.append((("directions",), "must not be given together with direction; keep one"))
        if self.grace_period <= self.heartbeat_interval:
            found.append(
                (
                    ("grace_period",),
                    f"must be > heartbeat_interval, but got grace_period={self.grace_period}, "
                    f"heartbeat_interval={self.heartbeat_interval}",
                )
            )

        count = len(self.directions) if self.directions is not None else 1
        if isinstance(self.metric, tuple):
            if len(self.metric) != count:
                found.append(
                    (
                        ("metric",),
                        f"must have one name per direction ({count}), "
                        f"but got {len(self.metric)} names",
                    )
                )
            if len(set(self.metric)) != len(self.metric):
                found.append((("metric",), f"must not repeat a name, but got {list(self.metric)}"))
        elif count > 1 and "metric" in self.model_fields_set:
            found.append(
                (
                    ("metric",),
                    f"must be a list with one name per direction ({count}), "
                    f"but got {show(self.metric)}",
                )
            )

        if found:
            raise problems(found)
        return self


# objective:

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_IMPORT_PATH = re.compile(rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})*:{_IDENTIFIER}")


class ObjectiveSection(_Section):
    """The `objective:` section: a built-in name or `package.module:function`, and its arguments.

    Only the syntax of the name is checked here. Whether it imports is checked when it is loaded.
    """

    name: str = Field(min_length=1)
    args: dict[str, JsonValue] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if ":" in name and not _IMPORT_PATH.fullmatch(name):
            raise problem(f"must be a built-in name or package.module:function, but got {name!r}")
        return name


# space:


class _Param(_Section):
    when: dict[str, CategoricalChoice] | None = None


class FloatParam(_Param):
    """A float parameter, suggested with `trial.suggest_float`."""

    type: Literal["float"] = "float"
    low: float
    high: float
    log: bool = False
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _check_range(self) -> FloatParam:
        found = _range_problems(self.low, self.high, self.log)
        if self.log and self.step is not None:
            found.append(
                (("step",), f"must be unset when log is true, but got step={show(self.step)}")
            )
        elif (
            self.step is not None
            and self.low <= self.high
            and not is_multiple(self.low, self.high, self.step)
        ):
            found.append(
                (
                    (),
                    "high - low must be a multiple of step, but got "
                    f"low={show(self.low)}, high={show(self.high)}, step={show(self.step)}",
                )
            )
        if found:
            raise problems(found)
        return self


class IntParam(_Param):
    """An int parameter, suggested with `trial.suggest_int`."""

    type: Literal["int"] = "int"
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check_range(self) -> IntParam:
        found = _range_problems(self.low, self.high, self.log)
        if self.log and self.step != 1:
            found.append((("step",), f"must be 1 when log is true, but got step={self.step}"))
        elif self.low <= self.high and (self.high - self.low) % self.step != 0:
            found.append(
                (
                    (),
                    "high - low must be a multiple of step, but got "
                    f"low={self.low}, high={self.high}, step={self.step}",
                )
            )
        if found:
            raise problems(found)
        return self


class CategoricalParam(_Param):
    """A categorical parameter, suggested with `trial.suggest_categorical`."""

    type: Literal["categorical"] = "categorical"
    choices: tuple[CategoricalChoice, ...]

    @field_validator("choices", mode="before")
    @classmethod
    def _check_scalars(cls, choices: object) -> object:
        if isinstance(choices, list):
            for item in choices:
                if isinstance(item, (list, dict)):
                    raise problem(
                        "must be a list of strings, numbers, booleans or null, "
                        f"but got {show(item)}"
                    )
        return choices

    @field_validator("choices")
    @classmethod
    def _check_choices(
        cls, choices: tuple[CategoricalChoice, ...]
    ) -> tuple[CategoricalChoice, ...]:
        if not choices:
            raise problem("must be a non-empty list, but got []")

        repeated = [
            choice
            for index, choice in enumerate(choices)
            if any(same_choice(choice, earlier) for earlier in choices[:index])
        ]
        if repeated:
            raise problem(
                "must not repeat a value, but got "
                + ", ".join(show(choice) for choice in repeated)
                + " more than once"
            )
        return choices

    def can_take(self, value: object) -> bool:
        """Check whether `value` is one of the choices."""
        return any(same_choice(value, choice) for choice in self.choices)


def _range_problems(low: float, high: float, log: bool) -> list[tuple[KeyPath, str]]:
    found: list[tuple[KeyPath, str]] = []
    if low > high:
        found.append(((), f"low must be <= high, but got low={show(low)}, high={show(high)}"))
    if log and low <= 0:
        found.append(((), f"log scale needs low > 0, but got low={show(low)}"))
    return found


def _param_type(value: object) -> str | None:
    if isinstance(value, Mapping):
        tag = value.get("type")
        return None if tag is None else str(tag)
    if isinstance(value, BaseModel):
        return str(getattr(value, "type", None))
    # Any other value is not a mapping, and the float model reports it as such.
    return "float"


ParamSpec = Annotated[
    Annotated[FloatParam, Tag("float")]
    | Annotated[IntParam, Tag("int")]
    | Annotated[CategoricalParam, Tag("categorical")],
    Discriminator(_param_type),
]


def _when_problems(space: Mapping[str, ParamSpec]) -> list[tuple[KeyPath, str]]:
    found: list[tuple[KeyPath, str]] = []
    earlier: dict[str, ParamSpec] = {}
    for name, param in space.items():
        for other, value in (param.when or {}).items():
            path: KeyPath = (name, "when", other)
            condition = earlier.get(other)
            if condition is None:
                where = "a later parameter" if other in space else "an unknown parameter"
                names = ", ".join(earlier) or "none"
                found.append(
                    (
                        path,
                        f"must name a parameter defined above {name} ({names}), "
                        f"but got {where} {other!r}",
                    )
                )
            elif isinstance(condition, CategoricalParam):
                if not condition.can_take(value):
                    choices = ", ".join(show(choice) for choice in condition.choices)
                    found.append((path, f"must be one of {choices}, but got {show(value)}"))
            elif not _in_range(condition, value):
                kind = "an integer" if isinstance(condition, IntParam) else "a number"
                found.append(
                    (
                        path,
                        f"must be {kind} within [{show(condition.low)}, "
                        f"{show(condition.high)}], but got {show(value)}",
                    )
                )
        earlier[name] = param
    return found


def _in_range(param: FloatParam | IntParam, value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(param, IntParam) and not isinstance(value, int):
        return False
    return param.low <= value <= param.high


# sampler:


class _Sampler(_Section):
    seed: int | None = None


class TpeSamplerSpec(_Sampler):
    """`optuna.samplers.TPESampler`. Options left as None take Optuna's defaults."""

    type: Literal["tpe"] = "tpe"
    n_startup_trials: int | None = Field(default=None, ge=0)
    n_ei_candidates: int | None = Field(default=None, ge=1)
    multivariate: bool | None = None
    group: bool | None = None
    constant_liar: bool | None = None


class RandomSamplerSpec(_Sampler):
    """`optuna.samplers.RandomSampler`."""

    type: Literal["random"] = "random"


class CmaEsSamplerSpec(_Sampler):
    """`optuna.samplers.CmaEsSampler`. Options left as None take Optuna's defaults.

    NOTE: `sigma0`, `x0` and `restart_strategy` are not accepted: Optuna 4.4 stopped using
    `restart_strategy` and Optuna 4.9 deprecated `sigma0` and `x0`, all to be removed in 6.0.
    """

    type: Literal["cmaes"] = "cmaes"
    n_startup_trials: int | None = Field(default=None, ge=0)
    popsize: int | None = Field(default=None, ge=1)
    consider_pruned_trials: bool | None = None
    use_separable_cma: bool | None = None
    with_margin: bool | None = None
    lr_adapt: bool | None = None


class GpSamplerSpec(_Sampler):
    """`optuna.samplers.GPSampler`. Options left as None take Optuna's defaults."""

    type: Literal["gp"] = "gp"
    n_startup_trials: int | None = Field(default=None, ge=0)
    deterministic_objective: bool | None = None


class NsgaIISamplerSpec(_Sampler):
    """`optuna.samplers.NSGAIISampler`. Options left as None take Optuna's defaults."""

    type: Literal["nsgaii"] = "nsgaii"
    population_size: int | None = Field(default=None, ge=2)
    mutation_prob: float | None = Field(default=None, ge=0, le=1)
    crossover_prob: float | None = Field(default=None, ge=0, le=1)
    swapping_prob: float | None = Field(default=None, ge=0, le=1)


class GridSamplerSpec(_Sampler):
    """`optuna.samplers.GridSampler`, with the grid derived from the search space."""

    type: Literal["grid"] = "grid"


class QmcSamplerSpec(_Sampler):
    """`optuna.samplers.QMCSampler`. Options left as None take Optuna's defaults."""

    type: Literal["qmc"] = "qmc"
    qmc_type: Literal["sobol", "halton"] | None = None
    scramble: bool | None = None


def _sampler_type(value: object) -> str | None:
    if isinstance(value, Mapping):
        return str(value.get("type", "tpe"))
    if isinstance(value, BaseModel):
        return str(getattr(value, "type", None))
    return "tpe"


SamplerSpec = Annotated[
    Annotated[TpeSamplerSpec, Tag("tpe")]
    | Annotated[RandomSamplerSpec, Tag("random")]
    | Annotated[CmaEsSamplerSpec, Tag("cmaes")]
    | Annotated[GpSamplerSpec, Tag("gp")]
    | Annotated[NsgaIISamplerSpec, Tag("nsgaii")]
    | Annotated[GridSamplerSpec, Tag("grid")]
    | Annotated[QmcSamplerSpec, Tag("qmc")],
    Discriminator(_sampler_type),
]


# pruner:


class NopPrunerSpec(_Section):
    """No pruning: `optuna.pruners.NopPruner`."""

    type: Literal["none"] = "none"


class MedianPrunerSpec(_Section):
    """`optuna.pruners.MedianPruner`, with Optuna's defaults."""

    type: Literal["median"] = "median"
    n_startup_trials: int = Field(default=5, ge=0)
    n_warmup_steps: int = Field(default=0, ge=0)
    interval_steps: int = Field(default=1, ge=1)
    n_min_trials: int = Field(default=1, ge=1)


class PercentilePrunerSpec(_Section):
    """`optuna.pruners.PercentilePruner`, with Optuna's defaults."""

    type: Literal["percentile"] = "percentile"
    percentile: float = Field(ge=0, le=100)
    n_startup_trials: int = Field(default=5, ge=0)
    n_warmup_steps: int = Field(default=0, ge=0)
    interval_steps: int = Field(default=1, ge=1)
    n_min_trials: int = Field(default=1, ge=1)


def _to_resource(value: object) -> object:
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value
    raise problem(f"must be auto or an integer >= 1, but got {show(value)}")


Resource = Annotated[int | Literal["auto"], BeforeValidator(_to_resource)]


class SuccessiveHalvingPrunerSpec(_Section):
    """`optuna.pruners.SuccessiveHalvingPruner`, with Optuna's defaults."""

    type: Literal["successive_halving"] = "successive_halving"
    min_resource: Resource = "auto"
    reduction_factor: int = Field(default=4, ge=2)
    min_early_stopping_rate: int = Field(default=0, ge=0)
    bootstrap_count: int = Field(default=0, ge=0)


class HyperbandPrunerSpec(_Section):
    """`optuna.pruners.HyperbandPruner`, with Optuna's defaults."""

    type: Literal["hyperband"] = "hyperband"
    min_resource: int = Field(default=1, ge=1)
    max_resource: Resource = "auto"
    reduction_factor: int = Field(default=3, ge=2)
    bootstrap_count: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _check_resources(self) -> HyperbandPrunerSpec:
        if isinstance(self.max_resource, int) and self.max_resource < self.min_resource:
            raise problems(
                [
                    (
                        ("max_resource",),
                        f"must be >= min_resource, but got min_resource={self.min_resource}, "
                        f"max_resource={self.max_resource}",
                    )
                ]
            )
        return self


class ThresholdPrunerSpec(_Section):
    """`optuna.pruners.ThresholdPruner`: prunes a trial whose value leaves [lower, upper]."""

    type: Literal["threshold"] = "threshold"
    lower: float | None = None
    upper: float | None = None
    n_warmup_steps: int = Field(default=0, ge=0)
    interval_steps: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _check_bounds(self) -> ThresholdPrunerSpec:
        if self.lower is None and self.upper is None:
            raise problem("must set lower, upper or both, but got neither")
        if self.lower is not None and self.upper is not None and self.lower > self.upper:
            raise problem(
                "lower must be <= upper, but got "
                f"lower={show(self.lower)}, upper={show(self.upper)}"
            )
        return self


def _pruner_type(value: object) -> str | None:
    if isinstance(value, Mapping):
        return str(value.get("type", "median"))
    if isinstance(value, BaseModel):
        return str(getattr(value, "type", None))
    return "median"


PrunerSpec = Annotated[
    Annotated[MedianPrunerSpec, Tag("median")]
    | Annotated[NopPrunerSpec, Tag("none")]
    | Annotated[PercentilePrunerSpec, Tag("percentile")]
    | Annotated[SuccessiveHalvingPrunerSpec, Tag("successive_halving")]
    | Annotated[HyperbandPrunerSpec, Tag("hyperband")]
    | Annotated[ThresholdPrunerSpec, Tag("threshold")],
    Discriminator(_pruner_type),
]


# budget:, resources:, cluster:


def parse_duration(value: object) -> object:
    """Turn a number of seconds or a duration such as 90s, 10m, 2h or 1h30m into seconds."""
    if isinstance(value, str):
        text = value.strip()
        if _DURATION_PATTERN.fullmatch(text):
            return sum(
                float(amount) * _DURATION_UNITS[unit]
                for amount, unit in _DURATION_PART.findall(text)
            )
        try:
            return float(text)
        except ValueError:
            pass
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    raise problem(
        "must be a number of seconds or a duration such as 90s, 10m, 2h or 1h30m, "
        f"but got {show(value)}"
    )


Seconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class BudgetSection(_Section):
    """The `budget:` section. Durations are in seconds."""

    n_trials: int | None = Field(default=None, ge=1)
    timeout: Seconds | None = None
    trial_timeout: Seconds | None = None
    max_retries: int = Field(default=1, ge=0)

    @model_validator(mode="after")
    def _check_limit(self) -> BudgetSection:
        if self.n_trials is None and self.timeout is None:
            raise problem("must set n_trials, timeout or both, but got neither")
        return self


class ResourcesSection(_Section):
    """The `resources:` section: what each trial gets, and how many trials run at once."""

    cpus: float = Field(default=1, gt=0)
    gpus: float = Field(default=0, ge=0)
    parallelism: int = Field(default=1, ge=1)


class ClusterSection(_Section):
    """The `cluster:` section. No address starts a local Ray cluster."""

    address: str | None = Field(default=None, min_length=1)


# schedule:

# (field name, lowest value, highest value, names of the values from the lowest up)
_CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    (
        "month",
        1,
        12,
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
    ),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_CRON_ITEM = re.compile(r"(\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/([0-9]+))?")


def cron_problems(expression: str) -> list[str]:
    """Check a 5-field cron expression field by field and range by range."""
    fields = expression.split()
    if len(fields) != len(_CRON_FIELDS):
        return [
            "must have 5 fields (minute hour day-of-month month day-of-week), "
            f"but got {len(fields)} in {expression!r}"
        ]

    found = []
    for text, (field, first, last, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.lower().split(","):
            match = _CRON_ITEM.fullmatch(item)
            if match is None:
                found.append(f"{field} must be *, a number, a range or a list, but got {text!r}")
                break
            bounds, step = match.groups()
            numbers = (
                [] if bounds == "*" else [_cron_number(v, first, names) for v in bounds.split("-")]
            )
            valid = [
                number for number in numbers if number is not None and first <= number <= last
            ]
            if len(valid) != len(numbers):
                found.append(f"{field} must be within {first}-{last}, but got {text!r}")
                break
            if len(valid) == 2 and valid[0] > valid[1]:
                found.append(f"{field} range must go upwards, but got {text!r}")
                break
            if step is not None and int(step) == 0:
                found.append(f"{field} step must be >= 1, but got {text!r}")
                break
    return found


def _cron_number(text: str, first: int, names: Sequence[str]) -> int | None:
    if text.isdigit():
        return int(text)
    if text in names:
        return first + names.index(text)
    return None


class ScheduleSection(_Section):
    """The `schedule:` section for recurring sweeps."""

    cron: str
    timezone: str = "UTC"
    name: str = Field(default="{study}-{date}", min_length=1)
    warm_start: int = Field(default=0, ge=0)
    missed: Literal["skip", "run_once"] = "skip"
    overlap: Literal["skip", "queue"] = "skip"

    @field_validator("cron")
    @classmethod
    def _check_cron(cls, cron: str) -> str:
        found = cron_problems(cron)
        if found:
            raise problems([((), message) for message in found])
        return cron

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, timezone: str) -> str:
        try:
            zoneinfo.ZoneInfo(timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
            raise problem(
                f"must be an IANA time zone such as UTC or Europe/Berlin, but got {timezone!r}"
            ) from error
        return timezone

    @field_validator("name")
    @classmethod
    def _check_placeholders(cls, name: str) -> str:
        found = _placeholder_problems(name, SWEEP_NAME_PLACEHOLDERS)
        if found:
            raise problems([((), message) for message in found])
        return name


# The whole file


class StudySpec(_Section):
    """A validated study file."""

    study: StudySection
    objective: ObjectiveSection
    space: dict[str, ParamSpec] = Field(default_factory=dict)
    sampler: SamplerSpec = Field(default_factory=TpeSamplerSpec)
    pruner: PrunerSpec = Field(default_factory=MedianPrunerSpec)
    budget: BudgetSection
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    cluster: ClusterSection = Field(default_factory=ClusterSection)
    schedule: ScheduleSection | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: object) -> object:
        if not isinstance(data, dict):
            return data

        filled = dict(data)
        # An absent budget is validated as empty, so its "n_trials or timeout" check runs.
        filled.setdefault("budget", {})
        if "pruner" not in filled:
            study = filled.get("study")
            directions = study.get("directions") if isinstance(study, dict) else None
            several = isinstance(directions, list) and len(directions) > 1
            filled["pruner"] = {"type": "none" if several else "median"}
        return filled

    @field_validator("space")
    @classmethod
    def _check_when(cls, space: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        found = _when_problems(space)
        if found:
            raise problems(found)
        return space

    @model_validator(mode="after")
    def _check_across_sections(self) -> StudySpec:
        found: list[tuple[KeyPath, str]] = []
        count = len(self.directions)
        if count > 1 and self.pruner.type != "none":
            found.append(
                (
                    ("pruner", "type"),
                    "pruning is not supported for several objectives; set pruner.type: none",
                )
            )
        if count > 1 and self.sampler.type == "cmaes":
            found.append(
                (
                    ("sampler", "type"),
                    f"cmaes supports one objective, but got {count} directions; "
                    "use tpe, nsgaii, gp, random or qmc",
                )
            )

        if self.sampler.type == "grid":
            if not self.space:
                found.append(
                    (("sampler", "type"), "grid needs a non-empty space, but got no parameters")
                )
            for name, param in self.space.items():
                if isinstance(param, FloatParam) and param.step is None:
                    found.append(
                        (
                            ("space", name),
                            "grid sampler needs a step for a float parameter, but got none; "
                            "add step, or use type int or categorical",
                        )
                    )

        if found:
            raise problems(found)
        return self

    @property
    def directions(self) -> list[Direction]:
        """The study's directions, one per objective, whichever key the file used."""
        if self.study.directions is not None:
            return list(self.study.directions)
        return [self.study.direction or "minimize"]

    @property
    def metric_names(self) -> list[str]:
        """One metric name per objective: value_0, value_1, ... when several are left unnamed."""
        if isinstance(self.study.metric, tuple):
            return list(self.study.metric)
        count = len(self.directions)
        if count == 1:
            return [self.study.metric]
        return [f"{self.study.metric}_{index}" for index in range(count)]
