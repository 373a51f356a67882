"""Time to target: wall time until the best validation accuracy on digits reaches 0.98.

The same runs also give the time to 0.995, since on digits 0.98 comes within the first trials.

hpo with the median pruner (the pruning benchmark's run, so it is not run twice) against plain
Optuna without pruning (`study.optimize(n_jobs=2)`) and Ray Tune with ASHA, each with 60 trials
of the built-in `cnn` objective over the search space of examples/digits.yaml, 2 at once, TPE
with the same seed. Times count from the start of each run, start-up included.

Ray Tune calls the objective with an adapter trial that reports each epoch through
`ray.tune.report`; the trial's value (the pruned model's accuracy) comes as one more report at
the end, so ASHA's `max_t` is the number of epochs plus one.
"""

from __future__ import annotations

import logging
import math
import statistics
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._common import (
    Context,
    Params,
    Result,
    Row,
    Stopwatch,
    child_main,
    format_ratio,
    format_seconds,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    import optuna

    from hpo.search import ParamSpec

BENCHMARK = "3 time to target"
TRIALS = 60
QUICK_TRIALS = 6
QUICK_EPOCHS = 4
# ASHA stops trials at rungs from this many epochs on, after the 3 warm-up epochs that the
# example's median pruner waits for.
ASHA_GRACE_PERIOD = 4


def measure(context: Context) -> dict[str, Result]:
    """Run plain Optuna and Ray Tune on the digits study and return both summaries."""
    results: dict[str, Result] = {}
    for tool in ("optuna", "tune"):
        params: Params = {
            "url": context.create_database(f"target_{tool}"),
            "trials": QUICK_TRIALS if context.quick else TRIALS,
            "epochs": QUICK_EPOCHS if context.quick else None,
            "work_dir": str(context.work_dir),
        }
        results[tool] = context.run_child("bench.target", tool, params)
    return results


def rows(results: dict[str, Result], hpo_median: Result) -> list[Row]:
    named = (
        ("hpo", "hpo, median pruner", hpo_median),
        ("Optuna", "Optuna, no pruner", results["optuna"]),
        ("Ray Tune", "Ray Tune, ASHA", results["tune"]),
    )
    table: list[Row] = []
    for _, name, result in named:
        table.append(
            Row(
                BENCHMARK,
                f"{name}: wall time ({result['trials']} trials, {result['pruned']} pruned, "
                f"{result['reported_steps']} epochs, best {result['best_accuracy']:.4f})",
                format_seconds(result["wall_s"]),
            )
        )
        for target, seconds in result["target_s"].items():
            table.append(Row(BENCHMARK, f"{name}: time to {target}", format_seconds(seconds)))

    for target, hpo_s in hpo_median["target_s"].items():
        for tool, _, result in named[1:]:
            other_s = result["target_s"][target]
            if hpo_s is None or other_s is None:
                ratio = f"none: not every tool reached {target}"
            else:
                ratio = format_ratio(other_s / hpo_s)
            table.append(Row(BENCHMARK, f"time to {target}, {tool} / hpo", ratio))
    return table


# --- Child processes: one per tool ------------------------------------------------------------


def _run_optuna(params: Params) -> Result:
    import optuna

    from bench._digits import digits_spec, resources, summarize_study, wall_clock
    from hpo.objectives import cnn
    from hpo.search import suggest_params

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = digits_spec(
        n_trials=params["trials"], pruner="none", epochs=params["epochs"], **resources(params)
    )
    args = dict(spec.objective.args)

    def objective(trial: optuna.Trial) -> float:
        suggest_params(trial, spec.space)
        return float(cnn(trial, **args))  # type: ignore[arg-type]

    started_at = wall_clock()
    stopwatch = Stopwatch()
    study = optuna.create_study(
        storage=params["url"],
        study_name="digits",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=8),
        pruner=optuna.pruners.NopPruner(),
    )
    # Threads of one process, as Optuna runs n_jobs; each trial's torch uses one thread.
    study.optimize(objective, n_trials=params["trials"], n_jobs=spec.resources.parallelism)
    wall_s = stopwatch.elapsed()

    return summarize_study(study, started_at=started_at, wall_s=wall_s)


def _run_tune(params: Params) -> Result:
    import optuna
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from bench._digits import digits_spec, resources, times_to_targets, wall_clock
    from bench._tune import init_local_cluster

    logging.getLogger("ray").setLevel(logging.WARNING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = digits_spec(
        n_trials=params["trials"], pruner="none", epochs=params["epochs"], **resources(params)
    )
    per_trial = {"cpu": spec.resources.cpus, "gpu": spec.resources.gpus}
    args = dict(spec.objective.args)
    epochs = int(args["epochs"])  # type: ignore[call-overload]

    started_at = wall_clock()
    stopwatch = Stopwatch()
    init_local_cluster()
    search = OptunaSearch(
        space=partial(_suggest_space, space=spec.space),
        metric="val_accuracy",
        mode="max",
        sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=8),
        study_name="digits",
        storage=optuna.storages.RDBStorage(params["url"]),
    )
    scheduler = ASHAScheduler(
        time_attr="training_iteration",
        metric="val_accuracy",
        mode="max",
        max_t=epochs + 1,
        grace_period=min(ASHA_GRACE_PERIOD, epochs),
    )
    tuner = tune.Tuner(
        tune.with_resources(partial(_train_cnn, args=args), per_trial),
        tune_config=tune.TuneConfig(
            search_alg=search,
            scheduler=scheduler,
            num_samples=params["trials"],
            max_concurrent_trials=spec.resources.parallelism,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name="digits", storage_path=str(Path(params["work_dir"]) / "ray_results"), verbose=0
        ),
    )
    grid = tuner.fit()
    wall_s = stopwatch.elapsed()
    ray.shutdown()

    finished: list[tuple[float, float]] = []
    reported_steps = 0
    rates: list[float] = []
    for result in grid:
        # A trial's last report is its value when the objective returned, or the epoch at
        # which ASHA stopped it.
        last = result.metrics or {}
        steps = int(last.get("training_iteration", 0))
        epochs = steps
        if last.get("final"):
            finished.append((float(last["reported_at"]), float(last["val_accuracy"])))
            steps -= 1
            epochs = int(last["epochs_run"])
        reported_steps += steps
        if last.get("time_total_s"):
            rates.append(epochs / float(last["time_total_s"]))

    return {
        "trials": len(grid),
        "complete": len(finished),
        "pruned": len(grid) - len(finished),
        "failed": sum(1 for result in grid if result.error is not None),
        "reported_steps": reported_steps,
        "best_accuracy": max((accuracy for _, accuracy in finished), default=float("nan")),
        "wall_s": wall_s,
        "epochs_per_s_per_trial": statistics.median(rates) if rates else math.nan,
        "target_s": times_to_targets(finished, started_at=started_at),
    }


def _suggest_space(trial: optuna.Trial, *, space: Mapping[str, ParamSpec]) -> None:
    # OptunaSearch pickles its search space with its checkpoints, so this is a module function
    # bound with functools.partial rather than a closure.
    from hpo.search import suggest_params

    suggest_params(trial, space)


def _train_cnn(config: dict[str, Any], *, args: Mapping[str, object]) -> None:
    import time

    import ray

    from bench._tune import TuneTrial
    from hpo.objectives import cnn

    trial = TuneTrial(config, "val_accuracy")
    value = cnn(trial, **args)
    ray.tune.report(
        {
            "val_accuracy": float(value),
            "final": True,
            "epochs_run": trial.user_attrs["epochs_run"],
            "reported_at": time.time(),
        }
    )


if __name__ == "__main__":
    child_main({"optuna": _run_optuna, "tune": _run_tune})
