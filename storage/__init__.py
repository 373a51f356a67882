"""Study storage: URLs, retries, trial liveness and the study lock."""

from hpo.storage._liveness import (
    Heartbeat,
    count_budget_trials,
    recover_stale_trials,
    retry_trial,
)
from hpo.storage._lock import study_lock
from hpo.storage._retry import retry_transient
from hpo.storage._schema import StorageReport, check_storage, upgrade_storage
from hpo.storage._url import (
    DEFAULT_STORAGE_URL,
    MAX_CONNECTIONS,
    STORAGE_ENV_VAR,
    mask_url,
    open_storage,
    resolve_storage_url,
)

__all__ = [
    "DEFAULT_STORAGE_URL",
    "MAX_CONNECTIONS",
    "STORAGE_ENV_VAR",
    "Heartbeat",
    "StorageReport",
    "check_storage",
    "count_budget_trials",
    "mask_url",
    "open_storage",
    "recover_stale_trials",
    "resolve_storage_url",
    "retry_transient",
    "retry_trial",
    "study_lock",
    "upgrade_storage",
]
