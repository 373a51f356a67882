"""Objectives that every benchmarked tool runs unchanged, as plain Optuna objectives.

hpo imports them by name (`bench._objectives:noop`) on its Ray workers; plain Optuna calls them
with its own trial; Ray Tune calls them with the adapter trial of `bench._tune`.
"""

from __future__ import annotations

import os
import time
from typing import Any

import optuna


def noop(trial: Any, steps: int = 10, timestamps: str | None = None) -> float:
    """Report `steps` intermediate values and return at once, so all that is timed is the tool.

    Every trial reports the same values, so a median pruner or stopping rule is asked at every
    step but never stops a trial, and every tool does the same number of reports. With
    `timestamps`, one line "start end" (seconds since the epoch) per trial is appended to that
    file, so the benchmark can time from the first trial's start to the last trial's end.
    """
    started = time.time()
    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(steps):
        trial.report(1.0, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    ended = time.time()

    if timestamps is not None:
        _append_line(timestamps, f"{started!r} {ended!r}\n")
    return float(x)


def sleep(trial: Any, seconds: float = 1.0) -> float:
    """Sleep `seconds` and return the trial's `x`, so that trials overlap without using CPU."""
    x = trial.suggest_float("x", 0.0, 1.0)
    time.sleep(seconds)
    return float(x)


def _append_line(path: str, line: str) -> None:
    # One write() on a file opened with O_APPEND lands whole, even with several workers
    # appending to the same file at once.
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)
