"""Read-only views of studies in a storage: status rows and best parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo.errors import UsageError

if TYPE_CHECKING:
    import optuna


def study_status(
    storage: optuna.storages.BaseStorage, study_name: str | None, masked_url: str
) -> list[dict[str, Any]]:
    """Return one row per study: directions, trial counts by state and the best value."""
    import optuna

    names = [study_name] if study_name else optuna.get_all_study_names(storage)
    rows = []
    for name in names:
        study = load_study(storage, name, masked_url)
        rows.append(_status_row(study))
    return rows


def best_parameters(
    storage: optuna.storages.BaseStorage, study_name: str, masked_url: str
) -> dict[str, Any]:
    """Return the best trial's number, values and parameters, or the Pareto front's trials."""
    study = load_study(storage, study_name, masked_url)

    if len(study.directions) > 1:
        front = study.best_trials
        if not front:
            raise UsageError(f"study {study_name!r} has no complete trial yet")
        return {
            "study": study_name,
            "pareto_front": [
                {"trial": trial.number, "values": trial.values, "params": trial.params}
                for trial in front
            ],
        }

    try:
        best = study.best_trial
    except ValueError as e:
        raise UsageError(f"study {study_name!r} has no complete trial yet") from e
    return {"study": study_name, "trial": best.number, "value": best.value, "params": best.params}


def load_study(
    storage: optuna.storages.BaseStorage, study_name: str, masked_url: str
) -> optuna.Study:
    """Load a study by name; an unknown name raises `UsageError` listing the known ones."""
    import optuna

    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError as e:
        known = optuna.get_all_study_names(storage)
        listed = ", ".join(known) if known else "none"
        raise UsageError(
            f"study {study_name!r} not found in {masked_url}; studies there: {listed}"
        ) from e


def _status_row(study: optuna.Study) -> dict[str, Any]:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    counts = {state: 0 for state in TrialState}
    for trial in trials:
        counts[trial.state] += 1

    best_value = None
    best_trial = None
    if len(study.directions) == 1 and counts[TrialState.COMPLETE]:
        best = study.best_trial
        best_value = best.value
        best_trial = best.number

    return {
        "study": study.study_name,
        "directions": [direction.name.lower() for direction in study.directions],
        "complete": counts[TrialState.COMPLETE],
        "pruned": counts[TrialState.PRUNED],
        "failed": counts[TrialState.FAIL],
        "running": counts[TrialState.RUNNING],
        "waiting": counts[TrialState.WAITING],
        "best_value": best_value,
        "best_trial": best_trial,
    }
