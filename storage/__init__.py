"""Where studies live: storage URLs, masking, and opening Optuna's RDB storage."""

from hpo.storage._url import (
    DEFAULT_STORAGE_URL,
    STORAGE_ENV_VAR,
    mask_url,
    open_storage,
    resolve_storage_url,
)

__all__ = [
    "DEFAULT_STORAGE_URL",
    "STORAGE_ENV_VAR",
    "mask_url",
    "open_storage",
    "resolve_storage_url",
]
