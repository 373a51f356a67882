"""The built-in `cnn` objective: augment → train → prune → score.

Torch is imported inside the functions, so importing `hpo.objectives` stays light enough for
`hpo validate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ._config import resolve_config

if TYPE_CHECKING:
    from ._trial import TrialLike


def cnn(trial: TrialLike, **args: object) -> float | tuple[float, ...]:
    """Train a small CNN with the trial's hyperparameters, prune it and return its score.

    Hyperparameters come from `trial.params` (the launcher suggests them from the search space
    before the objective starts), then from `args` (the study file's fixed arguments), then from
    the defaults. The validation accuracy of the pruned model is the value; with
    ``objectives: [val_accuracy, nonzero_params]`` both are returned, for a two-objective study.
    The trial's user attributes get `sparsity`, `nonzero_params`, `model_size_bytes`,
    `inference_ms`, `epochs_run` and `device`.

    On the CPU, the same parameters, `seed` and `num_threads` give the same score. Raises
    `optuna.TrialPruned` when the trial's pruner stops it after an epoch.
    """
    config = resolve_config(trial.params, args)

    from . import _training

    return _training.run_trial(trial, config)


def evaluate_test(params: Mapping[str, object], args: Mapping[str, object]) -> float:
    """Retrain with `params` over `args` and return the accuracy on the test split.

    The split and seed are the trials', so the model is the one that a trial with these
    parameters trained.
    """
    config = resolve_config(params, args)

    from . import _training

    return _training.score_on_test_split(config)
