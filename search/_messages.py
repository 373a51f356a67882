"""Messages between the launcher and a trial worker.

A worker never opens the study database. Everything a running objective does to its trial
travels to the launcher as one of the events below, and the launcher sends back a `Reply` for
the two events that wait for one: `Suggest` (the value the sampler chose) and `Report` (whether
the pruner stops the trial).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ParamKind = Literal["float", "int", "categorical"]
ParamValue = float | int | str | bool | None


@dataclass(frozen=True)
class Started:
    """The objective began on a worker: where it runs, for the trial's user attributes."""

    hostname: str
    pid: int
    gpu_ids: tuple[str, ...]


@dataclass(frozen=True)
class Suggest:
    """A define-by-run ``trial.suggest_*`` call, which the launcher runs on its real trial."""

    name: str
    kind: ParamKind
    low: float | int | None = None
    high: float | int | None = None
    step: float | int | None = None
    log: bool = False
    choices: tuple[ParamValue, ...] = ()


@dataclass(frozen=True)
class Report:
    """An intermediate value. The reply's value is the pruner's decision to stop the trial."""

    step: int
    value: float


@dataclass(frozen=True)
class SetUserAttr:
    key: str
    value: object


@dataclass(frozen=True)
class Completed:
    values: tuple[float, ...]


@dataclass(frozen=True)
class Pruned:
    message: str


@dataclass(frozen=True)
class Failed:
    """The objective raised; `summary` is the end of the traceback, stored on the trial."""

    summary: str


Event = Started | Suggest | Report | SetUserAttr | Completed | Pruned | Failed
FINAL_EVENTS = (Completed, Pruned, Failed)


@dataclass(frozen=True)
class Reply:
    """The launcher's reply to a `Suggest` or `Report`. `error` is set when the call failed."""

    value: ParamValue = None
    error: str | None = None
