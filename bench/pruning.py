"""Pruning: the digits study through hpo with the median pruner and with no pruner.

Both runs are examples/digits.yaml with 60 trials, the same TPE seed and 2 trials at once. With
trials running in parallel, TPE sees results in an order that depends on timing, so the two
runs sample different parameters after the first 8 trials even with the same seed.
"""

from __future__ import annotations

import math

from bench._common import (
    Context,
    Params,
    Result,
    Row,
    Stopwatch,
    child_main,
    format_seconds,
    verdict,
)

BENCHMARK = "2 pruning"
TRIALS = 60
QUICK_TRIALS = 6
QUICK_EPOCHS = 4
# Targets: the median pruner runs at most this fraction of the epochs of no pruning, and its
# best validation accuracy is at most this many points (hundredths) below.
MAX_EPOCH_FRACTION = 0.5
MAX_ACCURACY_LOSS_POINTS = 0.3


def measure(context: Context) -> dict[str, Result]:
    """Run the study with the median pruner and without one, and return both summaries."""
    results: dict[str, Result] = {}
    for pruner in ("median", "none"):
        params: Params = {
            "url": context.create_database(f"pruning_{pruner}"),
            "pruner": pruner,
            "trials": QUICK_TRIALS if context.quick else TRIALS,
            "epochs": QUICK_EPOCHS if context.quick else None,
        }
        results[pruner] = context.run_child("bench.pruning", "hpo", params, label=f"hpo-{pruner}")
    return results


def rows(results: dict[str, Result]) -> list[Row]:
    table: list[Row] = []
    for pruner, name in (("median", "median pruner"), ("none", "no pruner")):
        result = results[pruner]
        table.append(
            Row(
                BENCHMARK,
                f"hpo, {name}: epochs run (reported steps), {result['trials']} trials, "
                f"{result['pruned']} pruned",
                str(result["reported_steps"]),
            )
        )
        table.append(Row(BENCHMARK, f"hpo, {name}: wall time", format_seconds(result["wall_s"])))
        table.append(
            Row(
                BENCHMARK,
                f"hpo, {name}: best validation accuracy",
                f"{result['best_accuracy']:.4f}",
            )
        )

    median, none = results["median"], results["none"]
    fraction = median["reported_steps"] / none["reported_steps"]
    table.append(
        Row(
            BENCHMARK,
            "epochs run, median pruner / no pruner",
            f"{fraction:.2f}",
            f"<= {MAX_EPOCH_FRACTION:g}",
            verdict(fraction <= MAX_EPOCH_FRACTION, f"{fraction - MAX_EPOCH_FRACTION:.2f} over"),
        )
    )
    loss_points = 100 * (none["best_accuracy"] - median["best_accuracy"])
    table.append(
        Row(
            BENCHMARK,
            "best accuracy, no pruner - median pruner",
            f"{loss_points:+.2f} points",
            f"<= {MAX_ACCURACY_LOSS_POINTS:g} points",
            verdict(
                not math.isnan(loss_points) and loss_points <= MAX_ACCURACY_LOSS_POINTS,
                f"{loss_points - MAX_ACCURACY_LOSS_POINTS:.2f} points over",
            ),
        )
    )
    table.append(
        Row(
            BENCHMARK,
            "wall time, median pruner / no pruner",
            f"{median['wall_s'] / none['wall_s']:.2f}",
        )
    )
    return table


def _run_hpo(params: Params) -> Result:
    from bench._digits import digits_spec, resources, summarize_study, wall_clock
    from hpo.search import launch

    spec = digits_spec(
        n_trials=params["trials"],
        pruner=params["pruner"],
        epochs=params["epochs"],
        **resources(params),
    )

    started_at = wall_clock()
    stopwatch = Stopwatch()
    result = launch(spec, storage_url=params["url"])
    wall_s = stopwatch.elapsed()

    return summarize_study(result.study, started_at=started_at, wall_s=wall_s)


if __name__ == "__main__":
    child_main({"hpo": _run_hpo})
