"""Orchestration overhead: a no-op objective that reports 10 steps, trials 2 at once.

hpo, plain Optuna (`study.optimize(n_jobs=2)`) and Ray Tune (`Tuner` with `OptunaSearch` and
`MedianStoppingRule`) run the same objective against a fresh database each, on one PostgreSQL
server. Since the objective does nothing, the wall time per trial is the tool's overhead.

Each trial appends its start and end to a file, so the steady-state window runs from the first
trial's start to the last trial's end and leaves out one-time start-up (the Ray cluster, the
worker processes, Ray Tune's controller). The total wall time, start-up included, is reported
too.
"""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from bench._common import (
    Context,
    Params,
    Result,
    Row,
    Stopwatch,
    child_main,
    format_ratio,
    format_seconds,
    read_timestamps,
    verdict,
)

if TYPE_CHECKING:
    import optuna

BENCHMARK = "1 overhead"
STEPS = 10
PARALLELISM = 2
TRIALS = 200
QUICK_TRIALS = 20
SEED = 0
# Targets: hpo's overhead per trial at most this multiple of plain Optuna's, and Ray Tune's at
# least this multiple of hpo's.
MAX_HPO_OVER_OPTUNA = 1.0
MIN_TUNE_OVER_HPO = 25.0

_STUDY = textwrap.dedent(
    """
    study:
      name: {name}
      direction: maximize
    objective:
      name: bench._objectives:noop
      args: {{steps: {steps}, timestamps: {timestamps}}}
    space:
      x: {{type: float, low: 0.0, high: 1.0}}
    sampler: {{type: tpe, seed: {seed}}}
    pruner: {{type: median}}
    budget: {{n_trials: {trials}}}
    resources: {{cpus: 1, gpus: 0, parallelism: {parallelism}}}
    """
)


def run(context: Context) -> list[Row]:
    trials = QUICK_TRIALS if context.quick else TRIALS
    results: dict[str, Result] = {}
    for tool in ("hpo", "optuna", "tune"):
        params: Params = {
            "url": context.create_database(f"overhead_{tool}"),
            "trials": trials,
            "timestamps": str(context.work_dir / f"overhead-{tool}.timestamps"),
            "work_dir": str(context.work_dir),
        }
        results[tool] = context.run_child("bench.overhead", tool, params)
    return rows(results)


def rows(results: dict[str, Result]) -> list[Row]:
    """Turn the three tools' timings into table rows, with the two ratios and their targets."""
    names = {"hpo": "hpo", "optuna": "Optuna", "tune": "Ray Tune"}
    table: list[Row] = []
    for tool, name in names.items():
        result = results[tool]
        per_trial = result["window_s"] / result["trials"]
        table.append(
            Row(
                BENCHMARK,
                f"{name}: trials/s, first trial start to last end ({result['trials']} trials)",
                f"{result['trials'] / result['window_s']:.1f}",
            )
        )
        table.append(Row(BENCHMARK, f"{name}: overhead per trial", format_seconds(per_trial)))
        table.append(
            Row(
                BENCHMARK,
                f"{name}: total wall time, start-up included",
                format_seconds(result["total_s"]),
            )
        )

    hpo = results["hpo"]["window_s"] / results["hpo"]["trials"]
    optuna = results["optuna"]["window_s"] / results["optuna"]["trials"]
    tune = results["tune"]["window_s"] / results["tune"]["trials"]
    hpo_over_optuna = hpo / optuna
    tune_over_hpo = tune / hpo
    table.append(
        Row(
            BENCHMARK,
            "overhead per trial, hpo / Optuna",
            format_ratio(hpo_over_optuna),
            f"<= {MAX_HPO_OVER_OPTUNA:g}x",
            verdict(
                hpo_over_optuna <= MAX_HPO_OVER_OPTUNA,
                f"{hpo_over_optuna / MAX_HPO_OVER_OPTUNA:.1f}x the target",
            ),
        )
    )
    table.append(
        Row(
            BENCHMARK,
            "overhead per trial, Ray Tune / hpo",
            format_ratio(tune_over_hpo),
            f">= {MIN_TUNE_OVER_HPO:g}x",
            verdict(
                tune_over_hpo >= MIN_TUNE_OVER_HPO,
                f"{MIN_TUNE_OVER_HPO / tune_over_hpo:.1f}x short of the target",
            ),
        )
    )
    return table


# --- Child processes: one per tool ------------------------------------------------------------


def _run_hpo(params: Params) -> Result:
    from hpo.search import launch, parse_spec

    timestamps = Path(params["timestamps"])
    spec = parse_spec(
        _STUDY.format(
            name="overhead",
            steps=STEPS,
            timestamps=timestamps,
            seed=SEED,
            trials=params["trials"],
            parallelism=PARALLELISM,
        )
    )

    stopwatch = Stopwatch()
    result = launch(spec, storage_url=params["url"])
    total_s = stopwatch.elapsed()

    return _result(timestamps, total_s, finished=result.state.finished)


def _run_optuna(params: Params) -> Result:
    import optuna

    from bench._objectives import noop

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    timestamps = Path(params["timestamps"])

    stopwatch = Stopwatch()
    study = optuna.create_study(
        storage=params["url"],
        study_name="overhead",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=SEED),
        pruner=optuna.pruners.MedianPruner(),
    )
    study.optimize(
        lambda trial: noop(trial, steps=STEPS, timestamps=str(timestamps)),
        n_trials=params["trials"],
        n_jobs=PARALLELISM,
    )
    total_s = stopwatch.elapsed()

    return _result(timestamps, total_s, finished=len(study.trials))


def _run_tune(params: Params) -> Result:
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import MedianStoppingRule
    from ray.tune.search.optuna import OptunaSearch

    from bench._objectives import noop
    from bench._tune import TuneTrial, init_local_cluster

    logging.getLogger("ray").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    timestamps = Path(params["timestamps"])

    def trainable(config: dict[str, float]) -> None:
        noop(TuneTrial(config, "value"), steps=STEPS, timestamps=str(timestamps))

    stopwatch = Stopwatch()
    init_local_cluster()
    search = OptunaSearch(
        space=_space,
        metric="value",
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=SEED),
        study_name="overhead",
        storage=optuna.storages.RDBStorage(params["url"]),
    )
    # Trials report every step, so the rule counts steps rather than seconds. It stops a trial
    # below the median from the first step on, like Optuna's MedianPruner with no warm-up.
    scheduler = MedianStoppingRule(
        time_attr="training_iteration", metric="value", mode="max", grace_period=1
    )
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(
            search_alg=search,
            scheduler=scheduler,
            num_samples=params["trials"],
            max_concurrent_trials=PARALLELISM,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="overhead", storage_path=str(Path(params["work_dir"]) / "ray_results"), verbose=0
        ),
    )
    grid = tuner.fit()
    total_s = stopwatch.elapsed()
    ray.shutdown()

    return _result(timestamps, total_s, finished=len(grid))


def _space(trial: optuna.Trial) -> None:
    # OptunaSearch pickles its search space with its checkpoints, so this is a module function.
    trial.suggest_float("x", 0.0, 1.0)


def _result(timestamps: Path, total_s: float, *, finished: int) -> Result:
    first_start, last_end, trials = read_timestamps(timestamps)
    if trials != finished:
        raise RuntimeError(f"{finished} trials finished, but {trials} wrote their timestamps")
    return {"trials": trials, "window_s": last_end - first_start, "total_s": total_s}


if __name__ == "__main__":
    child_main({"hpo": _run_hpo, "optuna": _run_optuna, "tune": _run_tune})
