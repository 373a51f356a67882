"""Finding an objective by name, and checking it before a study starts."""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import sys
import types
from collections.abc import Callable, Iterable, Mapping, Sequence

from hpo.errors import ObjectiveError

from ._cnn import cnn
from ._config import check_cnn_arguments
from ._datasets import check_dataset

Objective = Callable[..., float | Sequence[float]]

_BUILTINS: dict[str, Objective] = {"cnn": cnn}


def load_objective(name: str) -> Objective:
    """Return the objective that `name` refers to: a built-in name or `package.module:function`.

    The launcher calls the result as ``objective(trial, **args)``.
    """
    if name in _BUILTINS:
        return _BUILTINS[name]

    module_name, colon, attribute_path = name.partition(":")
    if not colon:
        matches = difflib.get_close_matches(name, _BUILTINS, n=1)
        hint = f" (did you mean {matches[0]}?)" if matches else ""
        raise ObjectiveError(
            f"unknown objective {name!r}{hint}: use a built-in objective "
            f"({', '.join(_BUILTINS)}) or an import path such as mypackage.module:function"
        )
    if not module_name or not attribute_path or ":" in attribute_path:
        raise ObjectiveError(
            f"invalid objective import path {name!r}: write it as mypackage.module:function"
        )

    module = _import_module(module_name)

    target: object = module
    for attribute in attribute_path.split("."):
        if not hasattr(target, attribute):
            raise ObjectiveError(
                f"objective {name!r} not found: module {module_name} ({module.__file__}) has no "
                f"attribute {attribute_path}: check the function name after the colon"
            )
        target = getattr(target, attribute)

    if not callable(target):
        raise ObjectiveError(
            f"objective {name!r} is a {type(target).__name__}, not a function: point it at a "
            "function that takes a trial and returns a float"
        )
    return target


def check_objective(
    name: str, args: Mapping[str, object], *, param_names: Iterable[str] = ()
) -> None:
    """Check, without training, that the objective exists and takes `args`.

    For the built-in `cnn` this validates every fixed argument, rejects search space parameters
    that it does not read (`param_names`, optional) and reads the dataset's headers. A user's
    objective is imported and its signature checked against ``objective(trial, **args)``.
    Raises `ObjectiveError`, or `DatasetError` for a dataset that cannot be read.
    """
    if name == "cnn":
        config = check_cnn_arguments(args, param_names)
        check_dataset(config)
        return

    objective = load_objective(name)
    try:
        signature = inspect.signature(objective)
    except (TypeError, ValueError):
        # Some callables implemented in C have no signature to check.
        return

    try:
        signature.bind(None, **args)
    except TypeError as e:
        if args:
            what = f"cannot take the objective arguments {', '.join(args)} ({e})"
            fix = "remove them from the study file or add them as keyword parameters"
        else:
            what = f"cannot be called with a trial alone ({e})"
            fix = "give it the signature objective(trial) -> float"
        raise ObjectiveError(f"objective {name!r} {what}: {fix}") from e


def _import_module(module_name: str) -> types.ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is None or not _is_same_or_parent(e.name, module_name):
            raise ObjectiveError(
                f"importing objective module {module_name} failed: {e}: install the missing "
                "package where the trials run"
            ) from e
        raise ObjectiveError(_module_not_found_message(module_name, e.name)) from e
    except Exception as e:
        # The user's module runs arbitrary code on import; any failure there is theirs to fix.
        raise ObjectiveError(
            f"importing objective module {module_name} failed: {type(e).__name__}: {e}"
        ) from e


def _is_same_or_parent(missing: str, module_name: str) -> bool:
    return module_name == missing or module_name.startswith(missing + ".")


def _module_not_found_message(module_name: str, missing: str) -> str:
    top_level = module_name.split(".")[0]
    source = f"{top_level}/" if "." in module_name else f"{top_level}.py"
    cwd = os.getcwd()
    if "" in sys.path or cwd in sys.path:
        where = (
            f"the current directory {cwd} is on the import path: run hpo from the folder that "
            f"contains {source}, or add that folder to PYTHONPATH"
        )
    else:
        where = (
            f"the current directory {cwd} is not on the import path: add the folder that "
            f"contains {source} to PYTHONPATH, or install its package"
        )
    return f"objective module {missing} not found ({where})"
