"""The pruning and time-to-target benchmarks with fractional GPUs per trial, for a GPU machine.

    .venv/bin/python -m bench.gpu [--gpus-per-trial 0.25] [--trials 60] [--postgres URL]
    .venv/bin/python -m bench.gpu --smoke

Runs the digits study through hpo with the median pruner and without one, through plain Optuna
(`n_jobs` threads sharing the GPU) and through Ray Tune with ASHA, each trial with
`--gpus-per-trial` of a GPU and as many trials at once as fit on the machine's GPUs. It reports
the training samples per second of each trial (median over trials) and the GPU utilization
while each tool runs, read from `nvidia-smi` every half second, or from
`torch.cuda.utilization()` where `nvidia-smi` is missing.

`--smoke` shrinks it to a few trials of 2 epochs on the CPU (no GPU asked for), so a machine
without a GPU can check that it starts; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench._common import (
    REPO_ROOT,
    Context,
    Params,
    Result,
    Row,
    Stopwatch,
    format_seconds,
    new_run_id,
    render_table,
    server_url_from_env,
)

BENCHMARK = "5 gpu"
SAMPLE_INTERVAL_S = 0.5
SMOKE_TRIALS = 2
SMOKE_EPOCHS = 1
# (module, tool, pruner, label) of each run, in order.
_RUNS = (
    ("bench.pruning", "hpo", "median", "hpo, median pruner"),
    ("bench.pruning", "hpo", "none", "hpo, no pruner"),
    ("bench.target", "optuna", "none", "Optuna, no pruner"),
    ("bench.target", "tune", "asha", "Ray Tune, ASHA"),
)


class GpuSampler:
    """A thread that reads the mean utilization of the machine's GPUs, in percent."""

    def __init__(self) -> None:
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gpu-sampler", daemon=True)
        self.source = _utilization_source()

    @contextmanager
    def sampling(self) -> Iterator[GpuSampler]:
        if self.source is not None:
            self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            if self._thread.is_alive():
                self._thread.join()

    def describe(self) -> str:
        if self.source is None:
            return "n/a (no GPU found)"
        if not self._samples:
            return "n/a (no sample)"
        return f"mean {statistics.mean(self._samples):.0f}%, peak {max(self._samples):.0f}%"

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            reading = _read_utilization(self.source)
            if reading is not None:
                self._samples.append(reading)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    n_gpus = _count_gpus()
    if args.smoke:
        trials, epochs, gpus, parallelism, cpus = SMOKE_TRIALS, SMOKE_EPOCHS, 0.0, 2, 1.0
    else:
        if n_gpus == 0:
            raise SystemExit(
                "no GPU found (nvidia-smi -L lists none); run with --smoke to check the script "
                "on the CPU"
            )
        trials, epochs, gpus = args.trials, None, args.gpus_per_trial
        parallelism = max(1, math.floor(n_gpus / gpus + 1e-9))
        cpus = round(min(1.0, _cpu_count() / parallelism), 3)

    run_id = new_run_id()
    log_dir = REPO_ROOT / "build" / "bench" / f"{run_id}-gpu"
    log_dir.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix=f"hpo-bench-{run_id}-"))
    context = Context(
        server_url=server_url_from_env(args.postgres),
        run_id=run_id,
        work_dir=work_dir,
        log_dir=log_dir,
        quick=args.smoke,
    )
    setting = (
        f"{trials} trials of digits, {gpus:g} GPU and {cpus:g} CPU per trial, "
        f"{parallelism} at once, {n_gpus} GPUs found"
    )
    print(f"Run id: {run_id}\n{setting}", flush=True)

    stopwatch = Stopwatch()
    n_train = _train_split_size()
    rows: list[Row] = []
    try:
        for module, tool, pruner, label in _RUNS:
            params: Params = {
                "url": context.create_database(f"gpu_{tool}_{pruner}"),
                "pruner": pruner,
                "trials": trials,
                "epochs": epochs,
                "gpus": gpus,
                "cpus": cpus,
                "parallelism": parallelism,
                "work_dir": str(work_dir),
            }
            sampler = GpuSampler()
            with sampler.sampling():
                result = context.run_child(module, tool, params, label=f"{tool}-{pruner}")
            rows += _rows(label, result, sampler, n_train=n_train)
    finally:
        context.drop_databases()
        shutil.rmtree(work_dir, ignore_errors=True)

    print()
    print(render_table(rows))
    print()
    print(f"Ran in {stopwatch.elapsed() / 60:.1f} min. Logs: {log_dir.relative_to(REPO_ROOT)}/")
    return 0


def _rows(label: str, result: Result, sampler: GpuSampler, *, n_train: int) -> list[Row]:
    per_trial = result["epochs_per_s_per_trial"] * n_train
    table = [
        Row(
            BENCHMARK,
            f"{label}: wall time ({result['trials']} trials, {result['pruned']} pruned, "
            f"{result['reported_steps']} epochs, best {result['best_accuracy']:.4f})",
            format_seconds(result["wall_s"]),
        )
    ]
    for target, seconds in result["target_s"].items():
        table.append(Row(BENCHMARK, f"{label}: time to {target}", format_seconds(seconds)))
    return [
        *table,
        Row(
            BENCHMARK,
            f"{label}: training samples/s per trial, median",
            "n/a" if math.isnan(per_trial) else f"{per_trial:,.0f}",
        ),
        Row(BENCHMARK, f"{label}: GPU utilization", sampler.describe()),
    ]


def _train_split_size() -> int:
    """Return the number of training images of the digits study's split."""
    from bench._digits import digits_spec
    from hpo.objectives._config import resolve_config
    from hpo.objectives._datasets import load_splits

    # NOTE: the split size comes from hpo's private dataset loader, because the objective
    # stores no sample count on the trial.
    spec = digits_spec(n_trials=1, pruner="none")
    return len(load_splits(resolve_config({}, spec.objective.args)).y_train)


def _utilization_source() -> str | None:
    if shutil.which("nvidia-smi") is not None and _count_gpus() > 0:
        return "nvidia-smi"
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.utilization()
            return "torch"
    except (ImportError, RuntimeError, ModuleNotFoundError):
        # torch.cuda.utilization needs the pynvml module, so without it there is no reading.
        pass
    return None


def _read_utilization(source: str | None) -> float | None:
    if source == "nvidia-smi":
        try:
            completed = subprocess.run(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        values = [float(line) for line in completed.stdout.split() if line.strip()]
        return statistics.mean(values) if values else None
    if source == "torch":
        import torch

        return float(
            statistics.mean(torch.cuda.utilization(i) for i in range(torch.cuda.device_count()))
        )
    return None


def _count_gpus() -> int:
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        completed = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in completed.stdout.splitlines() if line.startswith("GPU "))


def _cpu_count() -> int:
    return os.cpu_count() or 1


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gpu",
        description="Pruning and time to target on digits with fractional GPUs per trial.",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE_TRIALS} trials of {SMOKE_EPOCHS} epochs on the CPU, no GPU: checks that "
        "the script starts",
    )
    parser.add_argument(
        "--gpus-per-trial",
        type=float,
        default=0.25,
        metavar="FRACTION",
        help="share of a GPU that each trial gets (default 0.25: 4 trials on each GPU)",
    )
    parser.add_argument("--trials", type=int, default=60, help="trials per run (default 60)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="PostgreSQL server URL without a database name "
        "(default: $HPO_BENCH_POSTGRES, else postgresql+psycopg2://postgres@127.0.0.1:5432)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.gpus_per_trial <= 1:
        parser.error(f"--gpus-per-trial must be in (0, 1], but got {args.gpus_per_trial}")
    if args.trials < 1:
        parser.error(f"--trials must be at least 1, but got {args.trials}")
    return args


if __name__ == "__main__":
    sys.exit(main())
