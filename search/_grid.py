"""A grid sampler that works with the launcher's ask-and-tell loop."""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState


class AskTellGridSampler(optuna.samplers.GridSampler):
    """Optuna's `GridSampler`, without the `Study.stop` call when the grid is exhausted.

    Optuna 5.1's `GridSampler.after_trial` calls `Study.stop`, which raises outside
    `Study.optimize`. The launcher asks `is_exhausted` before each new trial instead.
    """

    def after_trial(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        pass
