from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from optuna.distributions import CategoricalChoiceType


class TrialLike(Protocol):
    """The part of `optuna.trial.Trial` that an objective may call.

    A real Optuna trial satisfies it, and so does the object that a Ray worker passes in its place.
    """

    @property
    def number(self) -> int: ...

    @property
    def params(self) -> dict[str, Any]: ...

    @property
    def user_attrs(self) -> dict[str, Any]: ...

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int: ...

    def suggest_categorical(
        self, name: str, choices: Sequence[CategoricalChoiceType]
    ) -> CategoricalChoiceType: ...

    def report(self, value: float, step: int) -> None: ...

    def should_prune(self) -> bool: ...

    def set_user_attr(self, key: str, value: Any) -> None: ...


if TYPE_CHECKING:
    import optuna

    def _optuna_trial_is_trial_like(trial: optuna.trial.Trial) -> TrialLike:
        # mypy fails here if a new Optuna release drifts from the protocol.
        return trial
