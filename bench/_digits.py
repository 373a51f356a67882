"""The digits study of examples/digits.yaml, and the figures read back from a finished study.

Every tool runs the built-in objective `hpo.objectives.cnn` over the example's search space, so
the pruning and time-to-target benchmarks compare tools, not models.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import yaml

from bench._common import REPO_ROOT, Result

if TYPE_CHECKING:
    import optuna

    from hpo.search import StudySpec

EXAMPLE = REPO_ROOT / "examples" / "digits.yaml"
# Validation accuracies that the time-to-target benchmark waits for. On digits' 360 validation
# images, 0.98 means at most 7 wrong and 0.995 at most 1 wrong.
TARGET_ACCURACIES = (0.98, 0.995)
STUDY_NAME = "digits"


def digits_spec(
    *,
    n_trials: int,
    pruner: str,
    epochs: int | None = None,
    cpus: float = 1,
    gpus: float = 0,
    parallelism: int = 2,
) -> StudySpec:
    """Return examples/digits.yaml with the given budget, pruner and resources.

    The example's time limits are dropped, so every run finishes its trials; `pruner` is
    "median" (the example's median pruner) or "none".
    """
    from hpo.search import parse_spec

    data: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    data["study"]["name"] = STUDY_NAME
    data["budget"] = {"n_trials": n_trials, "max_retries": 0}
    data["resources"] = {"cpus": cpus, "gpus": gpus, "parallelism": parallelism}
    if pruner == "none":
        data["pruner"] = {"type": "none"}
    elif pruner != "median":
        raise ValueError(f"pruner must be median or none, but got {pruner!r}")
    if epochs is not None:
        data["objective"]["args"]["epochs"] = epochs
    return parse_spec(yaml.safe_dump(data, sort_keys=False), path=str(EXAMPLE))


def resources(params: Mapping[str, Any]) -> dict[str, Any]:
    """Return the resources per trial in a child's parameters: 1 CPU, no GPU, 2 at once."""
    return {
        "cpus": params.get("cpus", 1),
        "gpus": params.get("gpus", 0),
        "parallelism": params.get("parallelism", 2),
    }


def summarize_study(study: optuna.Study, *, started_at: float, wall_s: float) -> Result:
    """Read a finished study's figures: trials by state, epochs run, best accuracy and when.

    `started_at` is the run's start in seconds since the epoch, from which the time to the
    target accuracy counts.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    rates = [
        int(t.user_attrs.get("epochs_run", 0)) / duration
        for t in finished
        if (duration := _duration_s(t)) > 0
    ]
    return {
        "trials": len(trials),
        "complete": len(complete),
        "pruned": sum(1 for t in trials if t.state == TrialState.PRUNED),
        "failed": sum(1 for t in trials if t.state == TrialState.FAIL),
        "reported_steps": sum(len(t.intermediate_values) for t in finished),
        "epochs_run": sum(int(t.user_attrs.get("epochs_run", 0)) for t in finished),
        "best_accuracy": max((float(t.values[0]) for t in complete), default=math.nan),
        "wall_s": wall_s,
        "epochs_per_s_per_trial": statistics.median(rates) if rates else math.nan,
        "target_s": times_to_targets(
            [
                (_timestamp(t.datetime_complete), float(t.values[0]))
                for t in complete
                if t.datetime_complete is not None
            ],
            started_at=started_at,
        ),
    }


def times_to_targets(
    finished: list[tuple[float, float]], *, started_at: float
) -> dict[str, float | None]:
    """Return, for each target accuracy, the seconds from `started_at` until a trial reached it.

    `finished` contains (time, accuracy) of each complete trial. Keys are the targets as text, such
    as "0.98", and a target no trial reached maps to None.
    """
    times: dict[str, float | None] = {}
    for target in TARGET_ACCURACIES:
        reached = [at for at, accuracy in finished if accuracy >= target]
        times[f"{target:g}"] = min(reached) - started_at if reached else None
    return times


def _duration_s(trial: optuna.trial.FrozenTrial) -> float:
    """Return a trial's run time: hpo's `duration_s`, or else from Optuna's datetimes."""
    if "duration_s" in trial.user_attrs:
        return float(trial.user_attrs["duration_s"])
    if trial.datetime_start is None or trial.datetime_complete is None:
        return 0.0
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def _timestamp(moment: datetime) -> float:
    # Optuna stores naive local times, which `timestamp()` reads as local time too.
    return moment.timestamp()


def wall_clock() -> float:
    """Return seconds since the epoch, the clock that Optuna's trial datetimes can be read in."""
    return time.time()
