"""Optuna's RDB storage with every database call retried on transient errors.

The launcher, the heartbeat and the stale-trial check all go through Optuna's `Study` and
storage methods, so retrying below them covers every call without touching Optuna's logic.
Reads and idempotent writes (attributes and intermediate values are upserts, heartbeats are
overwritten) are simply retried. Two writes are not idempotent, and a retry after a connection
dropped at the moment of commit could apply them twice; each has a guard:

- `set_trial_state_values`: a second application finds the trial finished and Optuna raises
  `UpdateFinishedTrialError`. On a retry, a trial already in the requested state counts as done.
- `create_new_study`: a second application raises `DuplicatedStudyError`. On a retry, the study
  of that name counts as created.

`create_new_trial` cannot be guarded the same way, because nothing identifies the new trial
before it exists. A trial created twice leaves one RUNNING trial that no launcher tracks, and the
stale-trial check fails it once it is older than the grace period (see `hpo.storage._liveness`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import optuna
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.study import StudyDirection
from optuna.trial import TrialState

from hpo.storage._retry import retry_transient

F = TypeVar("F", bound=Callable[..., Any])

# Methods retried as they are: reads, and writes that give the same result when applied twice.
_RETRIED_AS_IS = (
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_all_studies",
    "create_new_trial",
    "set_trial_param",
    "get_trial_param",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_number_from_id",
    "get_trial_params",
    "get_trial",
    "get_all_trials",
    "get_n_trials",
    "get_best_trial",
    "record_heartbeat",
    # Private methods that Optuna's `_CachedStorage`, which wraps the storage inside every
    # `Study`, calls directly (Optuna 5.1).
    "_create_new_trial",
    "_get_best_trial_id",
    "_get_stale_trial_ids",
    "_get_trials",
    "_set_trial_param",
)


def _retried(name: str, method: F) -> F:
    @functools.wraps(method)
    def wrapper(self: ResilientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return retry_transient(
            lambda: method(self, *args, **kwargs),
            description=f"storage.{name}",
            before_retry=self.remove_session,
        )

    return wrapper  # type: ignore[return-value]


class ResilientRDBStorage(optuna.storages.RDBStorage):
    """`RDBStorage` whose calls survive database restarts and dropped connections.

    Before each retry the thread's SQLAlchemy session is discarded, because a session whose
    connection dropped in the middle of a transaction refuses every later call.
    """

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        attempts = 0

        def create() -> int:
            nonlocal attempts
            attempts += 1
            try:
                return super(ResilientRDBStorage, self).create_new_study(directions, study_name)
            except DuplicatedStudyError:
                if attempts == 1 or study_name is None:
                    raise
                # The first attempt committed before its connection dropped.
                return super(ResilientRDBStorage, self).get_study_id_from_name(study_name)

        return retry_transient(
            create, description="storage.create_new_study", before_retry=self.remove_session
        )

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        attempts = 0

        def update() -> bool:
            nonlocal attempts
            attempts += 1
            try:
                return super(ResilientRDBStorage, self).set_trial_state_values(
                    trial_id, state, values
                )
            except UpdateFinishedTrialError:
                if attempts == 1:
                    raise
                # The first attempt committed before its connection dropped.
                stored = super(ResilientRDBStorage, self).get_trial(trial_id)
                if stored.state == state:
                    return True
                raise

        return retry_transient(
            update,
            description=f"storage.set_trial_state_values({state.name})",
            before_retry=self.remove_session,
        )


for _name in _RETRIED_AS_IS:
    setattr(
        ResilientRDBStorage,
        _name,
        _retried(_name, getattr(optuna.storages.RDBStorage, _name)),
    )
