"""Arguments and hyperparameters of the built-in `cnn` objective, with their defaults and checks.

This module imports neither torch nor scikit-learn, so `check_objective` stays cheap.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hpo.errors import ObjectiveError

OptimizerName = Literal["adam", "adamw", "sgd"]
ScheduleName = Literal["none", "cosine", "step"]
DatasetName = Literal["digits", "mnist", "fashion_mnist", "npz"]
MetricName = Literal["val_accuracy", "nonzero_params"]

_DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
_IDX_DATASETS = ("mnist", "fashion_mnist")
_PYDANTIC_DETAIL = re.compile(r", (got|unable to) .*$")


class CnnConfig(BaseModel):
    """Every setting of one `cnn` run: trial parameters over fixed arguments over defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Hyperparameters: the search space may tune any of these.
    lr: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    optimizer: OptimizerName = "adamw"
    momentum: float = Field(default=0.9, ge=0, lt=1)
    batch_size: int = Field(default=64, ge=1)
    epochs: int = Field(default=15, ge=1)
    lr_schedule: ScheduleName = "cosine"
    width: int = Field(default=32, ge=1)
    depth: int = Field(default=2, ge=1, le=3)
    dropout: float = Field(default=0.1, ge=0, lt=1)
    rotation: float = Field(default=10.0, ge=0, le=180)
    translation: float = Field(default=0.1, ge=0, lt=1)
    scale: float = Field(default=0.1, ge=0, lt=1)
    noise: float = Field(default=0.0, ge=0)
    erasing: float = Field(default=0.0, ge=0, le=1)
    prune_amount: float = Field(default=0.0, ge=0, lt=1)
    finetune_epochs: int = Field(default=0, ge=0)

    # Data and run arguments: fixed in the study file, never tuned.
    dataset: DatasetName = "digits"
    data_dir: str | None = None
    path: str | None = None
    # scikit-learn's random_state takes seeds below 2**32.
    seed: int = Field(default=0, ge=0, lt=2**32)
    val_fraction: float = Field(default=0.2, gt=0, lt=1)
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    objectives: tuple[MetricName, ...] = ("val_accuracy",)
    device: str = "auto"
    num_threads: int = Field(default=1, ge=1)

    @field_validator("*", mode="before")
    @classmethod
    def _reject_booleans(cls, value: object) -> object:
        # Pydantic's lax mode reads True as 1, so `epochs: yes` in YAML would mean one epoch.
        if isinstance(value, bool):
            raise ValueError("must not be a boolean")
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not _DEVICE_PATTERN.fullmatch(value):
            raise ValueError("must be auto, cpu, cuda or cuda:<index>")
        return value

    @field_validator("objectives")
    @classmethod
    def _check_objectives(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("must name at least one metric")
        if len(set(value)) != len(value):
            raise ValueError("must not repeat a metric")
        return value

    @model_validator(mode="after")
    def _check_data_arguments(self) -> CnnConfig:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                "val_fraction + test_fraction must be < 1, but got "
                f"val_fraction={self.val_fraction} and test_fraction={self.test_fraction}"
            )

        if self.dataset in _IDX_DATASETS and self.data_dir is None:
            raise ValueError(
                f"dataset {self.dataset} needs data_dir: set it to the folder with the IDX files"
            )
        if self.dataset not in _IDX_DATASETS and self.data_dir is not None:
            raise ValueError(
                f"data_dir is used only with dataset mnist or fashion_mnist, but dataset is "
                f"{self.dataset}: remove data_dir or set the dataset"
            )

        if self.dataset == "npz" and self.path is None:
            raise ValueError("dataset npz needs path: set it to an .npz file with arrays x and y")
        if self.dataset != "npz" and self.path is not None:
            raise ValueError(
                f"path is used only with dataset npz, but dataset is {self.dataset}: "
                "remove path or set dataset: npz"
            )
        return self


HYPERPARAMETERS: tuple[str, ...] = (
    "lr",
    "weight_decay",
    "optimizer",
    "momentum",
    "batch_size",
    "epochs",
    "lr_schedule",
    "width",
    "depth",
    "dropout",
    "rotation",
    "translation",
    "scale",
    "noise",
    "erasing",
    "prune_amount",
    "finetune_epochs",
)
ARGUMENTS: tuple[str, ...] = tuple(CnnConfig.model_fields)


def resolve_config(params: Mapping[str, Any], args: Mapping[str, object]) -> CnnConfig:
    """Merge trial parameters over fixed arguments over defaults, and validate the result.

    Only hyperparameter names are read from `params`; `check_cnn_arguments` rejects any other
    name in the search space before a study starts.
    """
    _reject_unknown_names(args, ARGUMENTS, kind="argument")

    values = dict(args)
    for name in HYPERPARAMETERS:
        if name in params:
            values[name] = params[name]

    try:
        return CnnConfig.model_validate(values)
    except ValidationError as e:
        raise ObjectiveError(_format_validation_error(e)) from e


def check_cnn_arguments(args: Mapping[str, object], param_names: Iterable[str] = ()) -> CnnConfig:
    """Validate fixed arguments and the names that the search space tunes, without training.

    Returns the configuration with every tuned hyperparameter at its default.
    """
    param_names = list(param_names)
    _reject_unknown_names(param_names, HYPERPARAMETERS, kind="search space parameter")

    both = [name for name in param_names if name in args]
    if both:
        listed = ", ".join(both)
        raise ObjectiveError(
            f"objective cnn: {listed} both fixed in the objective arguments and tuned in the "
            "search space: remove one of the two"
        )

    return resolve_config({}, args)


def _reject_unknown_names(names: Iterable[str], known: Collection[str], *, kind: str) -> None:
    for name in names:
        if name in known:
            continue

        matches = difflib.get_close_matches(str(name), known, n=1)
        hint = f" (did you mean {matches[0]}?)" if matches else ""
        raise ObjectiveError(
            f"objective cnn: unknown {kind} {name!r}{hint}: use one of {', '.join(known)}"
        )


def _format_validation_error(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        message = str(item["msg"])
        if item["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        else:
            # Pydantic appends a detail ("..., got a number with a fractional part") that
            # repeats what the value shows.
            message = message.replace("Input should be", "must be")
            message = _PYDANTIC_DETAIL.sub("", message)

        if item["loc"]:
            name = _format_location(item["loc"])
            problems.append(f"{name} {message}, but got {name}={item['input']!r}")
        else:
            problems.append(message)

    if len(problems) == 1:
        return f"objective cnn: {problems[0]}"
    return f"objective cnn: {len(problems)} invalid arguments:\n" + "\n".join(
        f"  {problem}" for problem in problems
    )


def _format_location(location: tuple[int | str, ...]) -> str:
    name = str(location[0])
    for part in location[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name
