"""The live progress display of a launch and its closing summary, rendered with Rich."""

from __future__ import annotations

import textwrap
import time
from typing import TYPE_CHECKING

import yaml
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from types import TracebackType

    from hpo.search._launcher import LaunchResult, LaunchState


class LiveProgress:
    """Shows finished, pruned, failed, running and waiting trials, the best value and time left.

    The display redraws in place, so it is meant for a terminal. Elsewhere (CI logs, pipes) the
    CLI turns it off with `enabled=False`, because the per-trial log lines carry the progress.
    """

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self._console = console
        self._enabled = enabled
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self._task = self._bar.add_task("trials", total=None)
        self._line = Text()
        self._live = Live(
            Group(self._bar, self._line), console=console, refresh_per_second=4, transient=False
        )
        self._started = False

    def __enter__(self) -> LiveProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._started:
            self._live.__exit__(exc_type, exc, traceback)

    def update(self, state: LaunchState) -> None:
        # The display starts with the first trial, so an error found before any trial runs
        # is the first line of the output.
        if not self._enabled:
            return
        if not self._started:
            self._live.__enter__()
            self._started = True
        self._bar.update(
            self._task,
            description=state.study_name,
            total=state.n_trials,
            completed=state.finished,
        )
        self._line.plain = describe_state(state)


def describe_state(state: LaunchState) -> str:
    """Return the one-line status of a launch, as the progress display shows it."""
    parts = [
        f"complete {state.complete}",
        f"pruned {state.pruned}",
        f"failed {state.failed}",
        f"running {state.running}",
        f"waiting {state.waiting}",
    ]
    if state.best_value is not None:
        parts.append(f"best {state.best_value:.6g} (trial {state.best_trial})")
    if state.deadline is not None:
        left = max(0.0, state.deadline - time.monotonic())
        parts.append(f"time left {_format_duration(left)}")
    if state.stopping:
        parts.append("stopping: no new trials")
    return " · ".join(parts)


def render_summary(console: Console, result: LaunchResult) -> None:
    """Print the closing table of trial states and the best parameters."""
    state = result.state
    table = Table(title=f"Study {state.study_name}", show_header=True)
    table.add_column("state")
    table.add_column("trials", justify="right")
    for name, count in (
        ("complete", state.complete),
        ("pruned", state.pruned),
        ("failed", state.failed),
    ):
        table.add_row(name, str(count))
    table.add_row("run by this launch", str(result.ran))
    console.print(table)

    study = result.study
    if len(study.directions) == 1:
        if state.complete:
            best = study.best_trial
            console.print(f"Best value {best.value:.6g} in trial {best.number} with parameters:")
            # The same YAML as `hpo best`, ready to paste.
            params = yaml.safe_dump(best.params, sort_keys=False).rstrip()
            console.print(textwrap.indent(params, "  "), markup=False, highlight=False)
    else:
        console.print(f"{len(study.best_trials)} trials on the Pareto front.")


def _format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
