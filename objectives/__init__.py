"""Objectives: the built-in augment → train → prune → score CNN, and loading a user's own.

Importing this package does not import torch; the built-in objective imports it when it runs.
"""

from ._cnn import cnn, evaluate_test
from ._loading import check_objective, load_objective
from ._trial import TrialLike

__all__ = ["TrialLike", "check_objective", "cnn", "evaluate_test", "load_objective"]
