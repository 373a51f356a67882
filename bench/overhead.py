"""Orchestration overhead: a no-op objective that reports 10 steps, trials 2 at once.

hpo, plain Optuna (`study.optimize(n_jobs=2)`) and Ray Tune (`Tuner` with `OptunaSearch` and
`MedianStoppingRule`) run the same objective against a fresh database each, on one PostgreSQL
server. Since the objective does nothing, the wall time per trial is the tool's overhead. Ray
Tune runs twice: with its default, a new worker process (actor) for every trial, and with
`reuse_actors=True`, which keeps its workers as hpo does.

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
# Ray Tune's default starts a new worker process for every trial, over a second a trial on 2
# cores, so that run has fewer trials to keep the whole benchmark within minutes.
TUNE_DEFAULT_TRIALS = 40
TUNE_DEFAULT = "Ray Tune (default: new actor per trial)"
TUNE_REUSE = "Ray Tune (reuse_actors=True)"
# (label for databases and logs, name in the table, tool, trials, trials with --quick,
# Ray Tune's reuse_actors) of each run, in order.
_RUNS = (
    ("hpo", "hpo", "hpo", TRIALS, QUICK_TRIALS, None),
    ("optuna", "Optuna", "optuna", TRIALS, QUICK_TRIALS, None),
    ("tune_reuse", TUNE_REUSE, "tune", TRIALS, QUICK_TRIALS, True),
    ("tune_default", TUNE_DEFAULT, "tune", TUNE_DEFAULT_TRIALS, QUICK_TRIALS // 2, False),
)
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
    results: dict[str, Result] = {}
    for label, name, tool, trials, quick_trials, reuse_actors in _RUNS:
        params: Params = {
            "url": context.create_database(f"overhead_{label}"),
            "trials": quick_trials if context.quick else trials,
            "timestamps": str(context.work_dir / f"overhead-{label}.timestamps"),
            "work_dir": str(context.work_dir),
            "reuse_actors": reuse_actors,
        }
        results[name] = context.run_child("bench.overhead", tool, params, label=label)
    return rows(results)


def rows(results: dict[str, Result]) -> list[Row]:
    """Turn each run's timings into table rows, with the ratios to hpo and their targets."""
    table: list[Row] = []
    for name, result in results.items():
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

    per_trial = {name: result["window_s"] / result["trials"] for name, result in results.items()}
    hpo = per_trial["hpo"]
    hpo_over_optuna = hpo / per_trial["Optuna"]
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
    for name in (TUNE_DEFAULT, TUNE_REUSE):
        tune_over_hpo = per_trial[name] / hpo
        table.append(
            Row(
                BENCHMARK,
                f"overhead per trial, {name} / hpo",
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
    # NOTE: with its other defaults, the rule pauses an early trial once while too few others
    # have reported. The paused trial has no checkpoint, so it starts again from its first
    # step. That is Ray Tune's behaviour and stays in its figures.
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
            reuse_actors=params["reuse_actors"],
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
