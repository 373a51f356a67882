"""Ray Tune's side of the benchmarks: an adapter trial, so Optuna objectives run unchanged.

`TuneTrial` gives an objective the `optuna.Trial` calls it makes: parameters come from the
configuration that `OptunaSearch` sampled, `report` becomes `ray.tune.report`, and
`should_prune` is always False, because Ray Tune's scheduler stops a trial itself.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import ray


class TuneTrial:
    """The part of `optuna.Trial` that the benchmark objectives call, on top of Ray Tune."""

    def __init__(self, config: Mapping[str, Any], metric: str) -> None:
        self._params = dict(config)
        self._metric = metric
        self._user_attrs: dict[str, Any] = {}
        self.reports = 0

    @property
    def number(self) -> int:
        return 0

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def user_attrs(self) -> dict[str, Any]:
        return dict(self._user_attrs)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        return float(self._params[name])

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        return int(self._params[name])

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._params[name]

    def report(self, value: float, step: int) -> None:
        self.reports += 1
        ray.tune.report({self._metric: float(value), "step": step, "reported_at": time.time()})

    def should_prune(self) -> bool:
        return False

    def set_user_attr(self, key: str, value: Any) -> None:
        self._user_attrs[key] = value


def init_local_cluster() -> None:
    """Start a local Ray cluster on free ports, as hpo's launcher does.

    "local" always starts a new cluster, on ports that Ray picks, so it never takes the default
    head port 6379. The cluster has every CPU and GPU of the machine, like hpo's.
    """
    ray.init(
        address="local",
        include_dashboard=False,
        configure_logging=False,
        log_to_driver=True,
    )
