"""Trial liveness: heartbeats, stale-trial recovery, retries and the budget count.

Optuna records heartbeats only inside `Study.optimize`, and the launcher drives trials with
ask and tell, so the launcher records them itself through `Heartbeat`. A trial whose launcher
died stops getting heartbeats. Once its last one is older than the grace period, the next
launcher of the study, on any machine, fails it and enqueues its parameters again. Optuna's
`fail_stale_trials` moves a trial from RUNNING to FAIL in one conditional update, so when two
launchers notice the same trial, only one of them retries it.

A retry is a WAITING trial with the failed trial's parameters. It records the trial it repeats
in the system attribute ``failed_trial`` (Optuna's own name for it, as in
`RetryFailedTrialCallback`) and in the user attribute ``retry_of``, which the dashboard shows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

_logger = logging.getLogger(__name__)

SYSTEM_ATTR_FAILED_TRIAL = "failed_trial"
SYSTEM_ATTR_DISCARDED = "hpo:discarded"
ATTR_RETRY_OF = "retry_of"
ATTR_FAIL_REASON = "fail_reason"


class Heartbeat:
    """Records a heartbeat for each running trial at most once per `interval_s`."""

    def __init__(
        self,
        storage: optuna.storages.RDBStorage,
        interval_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._storage = storage
        self._interval_s = interval_s
        self._clock = clock
        self._last_beat: float | None = None

    def beat(self, trial_ids: Iterable[int]) -> None:
        """Record heartbeats for `trial_ids` once `interval_s` has passed since the last ones."""
        now = self._clock()
        if self._last_beat is not None and now - self._last_beat < self._interval_s:
            return
        for trial_id in trial_ids:
            self._storage.record_heartbeat(trial_id)
        self._last_beat = now

    def start(self, trial_id: int) -> None:
        """Record the first heartbeat of a new trial now, leaving the others' schedule alone."""
        self._storage.record_heartbeat(trial_id)


def retry_trial(study: optuna.Study, failed: FrozenTrial, *, max_retries: int | None) -> bool:
    """Enqueue the parameters of the failed trial `failed` again, unless it used up its retries.

    `max_retries` of None retries without limit, for trials that failed through no fault of
    their own, such as trials cancelled by Ctrl-C. Returns whether a retry was enqueued.
    """
    import optuna
    from optuna.trial import TrialState

    depth = _retry_depth(study, failed)
    if max_retries is not None and depth >= max_retries:
        _logger.info(
            "Trial %d failed and used up its %d retries; not retrying it.",
            failed.number,
            max_retries,
        )
        return False

    study.add_trial(
        optuna.trial.create_trial(
            state=TrialState.WAITING,
            system_attrs={
                "fixed_params": failed.params,
                SYSTEM_ATTR_FAILED_TRIAL: failed.number,
            },
            user_attrs={ATTR_RETRY_OF: failed.number},
        )
    )
    limit = "unlimited" if max_retries is None else str(max_retries)
    _logger.info(
        "Trial %d: enqueued its parameters again (retry %d of %s).",
        failed.number,
        depth + 1,
        limit,
    )
    return True


def recover_stale_trials(
    study: optuna.Study, *, grace_period_s: float, max_retries: int, own_trial_ids: set[int]
) -> int:
    """Fail the study's RUNNING trials whose launcher stopped beating, and retry them.

    Two kinds of trial are stale. The first kind has a last heartbeat older than the storage's
    grace period, and is retried. The second kind has no heartbeat at all and started more than
    `grace_period_s` ago: a launcher created it but never started it, because the launcher died
    or the creation was applied twice. It never ran, so it is marked discarded and the budget
    does not count it. Trials in `own_trial_ids` are this launcher's and never stale. Returns
    the number of trials failed.
    """
    from optuna.trial import TrialState

    storage = study._storage
    failed = 0

    for trial_id in storage._get_stale_trial_ids(study._study_id):  # type: ignore[attr-defined]
        if trial_id in own_trial_ids:
            continue
        if _fail_if_running(storage, trial_id, "its launcher stopped sending heartbeats"):
            failed += 1
            trial = storage.get_trial(trial_id)
            _logger.warning(
                "Trial %d failed: its launcher stopped sending heartbeats for longer than the "
                "grace period (%g s).",
                trial.number,
                grace_period_s,
            )
            retry_trial(study, trial, max_retries=max_retries)

    cutoff = datetime.now() - timedelta(seconds=grace_period_s)
    running = storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,))
    for trial in running:
        if trial._trial_id in own_trial_ids:
            continue
        started = trial.datetime_start
        if started is None or started > cutoff or _has_heartbeat(storage, trial._trial_id):
            continue
        storage.set_trial_system_attr(trial._trial_id, SYSTEM_ATTR_DISCARDED, True)
        if _fail_if_running(storage, trial._trial_id, "created but never started by a launcher"):
            failed += 1
            _logger.warning("Trial %d failed: created but never started.", trial.number)

    return failed


def count_budget_trials(study: optuna.Study, trials: Sequence[FrozenTrial] | None = None) -> int:
    """Count the trials of `study` that use up its budget.

    Every trial counts, in any state, except the failed trials that a retry replaces (the retry
    counts instead) and discarded trials that never ran. `trials`, when given, are all of the
    study's trials as the caller just read them, which saves reading them again.
    """
    if trials is None:
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
    retries = sum(1 for trial in trials if SYSTEM_ATTR_FAILED_TRIAL in trial.system_attrs)
    discarded = sum(1 for trial in trials if trial.system_attrs.get(SYSTEM_ATTR_DISCARDED))
    return len(trials) - retries - discarded


def _fail_if_running(storage: optuna.storages.BaseStorage, trial_id: int, reason: str) -> bool:
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        storage.set_trial_user_attr(trial_id, ATTR_FAIL_REASON, reason)
        return storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except UpdateFinishedTrialError:
        # Another launcher finished or failed the trial first.
        return False


def _has_heartbeat(storage: optuna.storages.BaseStorage, trial_id: int) -> bool:
    """Return whether a heartbeat was ever recorded for the trial.

    NOTE: Optuna has no public call for this, so it reads Optuna's `trial_heartbeats` table
    through its private models module (checked against Optuna 5.1).
    """
    from optuna.storages._rdb import models

    from hpo.storage._retry import retry_transient

    # `Study` wraps its RDB storage in Optuna's `_CachedStorage`; the session lives below it.
    rdb: Any = getattr(storage, "_backend", storage)

    def query() -> bool:
        session = rdb.scoped_session()
        try:
            found = (
                session.query(models.TrialHeartbeatModel)
                .filter(models.TrialHeartbeatModel.trial_id == trial_id)
                .first()
            )
            return found is not None
        finally:
            session.close()

    return retry_transient(query, description=f"read heartbeat of trial id {trial_id}")


def _retry_depth(study: optuna.Study, trial: FrozenTrial) -> int:
    """Count the retries that led to `trial` by following its ``failed_trial`` chain."""
    by_number = {
        t.number: t for t in study._storage.get_all_trials(study._study_id, deepcopy=False)
    }
    depth = 0
    current: FrozenTrial | None = trial
    while current is not None and SYSTEM_ATTR_FAILED_TRIAL in current.system_attrs:
        depth += 1
        current = by_number.get(int(current.system_attrs[SYSTEM_ATTR_FAILED_TRIAL]))
    return depth
