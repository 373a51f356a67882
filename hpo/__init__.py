"""hpo: hyperparameter search with Optuna studies in a database and trials on Ray workers."""

from hpo.errors import HpoError

__version__ = "0.1.0"

__all__ = ["HpoError", "__version__"]
