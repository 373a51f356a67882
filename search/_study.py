"""Creating a study or continuing it: directions, the stored search space, initialization.

A study that hpo created carries its search space in the system attribute ``hpo:space`` and
the marker ``hpo:initialized``, written last. A study without the marker was made either by
plain Optuna or by a launcher that died while creating it. Either way the next launch
initializes it, so no study stays half-made once it is launched again.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpo.errors import UsageError

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

    from hpo.search._spec import StudySpec

_logger = logging.getLogger(__name__)

SYSTEM_ATTR_SPACE = "hpo:space"
SYSTEM_ATTR_INITIALIZED = "hpo:initialized"


def find_study(storage: optuna.storages.BaseStorage, study_name: str) -> optuna.Study | None:
    """Load the study called `study_name`, or return None when the storage has none."""
    import optuna

    try:
        storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    return optuna.load_study(study_name=study_name, storage=storage)


def check_directions(study: optuna.Study, spec: StudySpec) -> None:
    """Raise `UsageError` if the stored study optimizes in other directions than the file."""
    stored = [direction.name.lower() for direction in study.directions]
    if stored != list(spec.directions):
        raise UsageError(
            f"study {study.study_name!r} exists with directions {stored}, but the study file "
            f"sets {list(spec.directions)}; rename the study or fix study.direction"
        )


@dataclass(frozen=True)
class SpaceChange:
    """One parameter whose distribution differs between the stored study and the file."""

    name: str
    before: BaseDistribution | None
    after: BaseDistribution | None

    @property
    def changes_choices(self) -> bool:
        """Whether a categorical parameter keeps its name but gets other choices."""
        from optuna.distributions import CategoricalDistribution

        return isinstance(self.before, CategoricalDistribution) and isinstance(
            self.after, CategoricalDistribution
        )

    def describe(self) -> str:
        if self.after is None:
            return f"space.{self.name}: removed (was {_describe(self.before)})"
        if self.before is None:
            return f"space.{self.name}: added ({_describe(self.after)})"
        return (
            f"space.{self.name}: changed from {_describe(self.before)} to {_describe(self.after)}"
        )


def space_changes(study: optuna.Study, spec: StudySpec) -> list[SpaceChange]:
    """List how the file's search space differs from the one stored with the study.

    A study that stores no space (made by plain Optuna) has no differences.
    """
    from optuna.distributions import json_to_distribution

    from hpo.search._space import space_distributions

    stored_json = study._storage.get_study_system_attrs(study._study_id).get(SYSTEM_ATTR_SPACE)
    if stored_json is None:
        return []

    stored = {name: json_to_distribution(text) for name, text in json.loads(stored_json).items()}
    current = space_distributions(spec.space)
    changes = [
        SpaceChange(name, stored.get(name), current.get(name))
        for name in sorted(stored.keys() | current.keys())
        if stored.get(name) != current.get(name)
    ]
    return changes


def check_space(study: optuna.Study, spec: StudySpec, *, allow_change: bool) -> None:
    """Raise `UsageError` listing the differing parameters, unless `allow_change` is set.

    Other choices for a categorical parameter are rejected even with `allow_change`: Optuna
    compares each parameter's distribution with the one stored on earlier trials and raises for
    categorical parameters whose choices differ.
    """
    changes = space_changes(study, spec)
    if not changes:
        return

    if not allow_change:
        raise UsageError(
            f"the search space of study {study.study_name!r} differs from the study file; "
            "pass --allow-space-change to continue anyway, or give the study a new name:\n"
            + "\n".join(f"  {change.describe()}" for change in changes)
        )

    categorical = [change for change in changes if change.changes_choices]
    if categorical:
        raise UsageError(
            f"the choices of a categorical parameter of study {study.study_name!r} differ "
            "from the study file, and Optuna cannot change them within a study; "
            "give the study or the parameter a new name:\n"
            + "\n".join(f"  {change.describe()}" for change in categorical)
        )

    _logger.warning(
        "Continuing study %r with a changed search space: %s",
        study.study_name,
        "; ".join(change.describe() for change in changes),
    )


def create_or_load(
    storage: optuna.storages.BaseStorage,
    spec: StudySpec,
    study_name: str,
    *,
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
    existing: optuna.Study | None = None,
) -> tuple[optuna.Study, bool]:
    """Create the study, or load it, and finish its initialization if that is missing.

    Returns the study and whether this call initialized it. `existing` is the study as the
    caller already loaded it: reusing it keeps the trials it has read, which on a large study
    take seconds to read again. Callers hold the study lock, so two launchers never initialize
    one study at once.
    """
    import optuna

    if existing is not None:
        study = existing
        study.sampler = sampler
        study.pruner = pruner
    else:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            directions=spec.directions,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=True,
        )
    system_attrs = storage.get_study_system_attrs(study._study_id)
    if system_attrs.get(SYSTEM_ATTR_INITIALIZED):
        _store_space(study, spec)
        return study, False

    _initialize(study, spec)
    return study, True


def _initialize(study: optuna.Study, spec: StudySpec) -> None:
    import optuna

    metric_names = spec.metric_names
    if metric_names and metric_names != ["value"]:
        # Study.set_metric_names is marked experimental since Optuna 3.2 and still is in 5.1;
        # the names only label values in the dashboard, so an interface change costs little.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(metric_names)
    for key, value in spec.study.tags.items():
        study.set_user_attr(key, value)
    study.set_user_attr("objective", spec.objective.name)
    _store_space(study, spec)
    study._storage.set_study_system_attr(study._study_id, SYSTEM_ATTR_INITIALIZED, True)


def _store_space(study: optuna.Study, spec: StudySpec) -> None:
    from optuna.distributions import distribution_to_json

    from hpo.search._space import space_distributions

    space = {
        name: distribution_to_json(distribution)
        for name, distribution in space_distributions(spec.space).items()
    }
    study._storage.set_study_system_attr(study._study_id, SYSTEM_ATTR_SPACE, json.dumps(space))


def _describe(distribution: BaseDistribution | None) -> str:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return f"choices {list(distribution.choices)}"
    if isinstance(distribution, (FloatDistribution, IntDistribution)):
        kind = "float" if isinstance(distribution, FloatDistribution) else "int"
        text = f"{kind} [{distribution.low}, {distribution.high}]"
        if distribution.log:
            text += " log"
        if distribution.step is not None and distribution.step != 1:
            text += f" step {distribution.step}"
        return text
    return repr(distribution)
