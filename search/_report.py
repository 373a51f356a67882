"""A static HTML report of a study, with optional PNG files of its plots.

The page is one self-contained file: plotly.js is embedded once in its head, so it opens with
no network. The plots come from `optuna.visualization`, except the intermediate values, which
are drawn here so that pruned trials are marked where they stopped. PNG files are written by
kaleido, which drives a Chrome or Chromium that it finds on the machine.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from hpo.errors import HpoError, UsageError

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go
    from optuna.trial import FrozenTrial


REPORT_FILE = "report.html"
# The top trials table lists this many trials of a single-objective study.
TOP_TRIALS = 10
# Size of each plot, in CSS pixels on the page and in pixels in a PNG file.
_PLOT_WIDTH = 1000
_PLOT_HEIGHT = 520
# kaleido waits this long for Chrome to render one figure, in seconds.
_KALEIDO_TIMEOUT_S = 90
_PLOT_CONFIG = {"displaylogo": False, "responsive": True}
_STATE_COLORS = {"COMPLETE": "#1f77b4", "PRUNED": "#ff7f0e"}
_OTHER_STATE_COLOR = "#999999"


@dataclass(frozen=True)
class PruningSavings:
    """Training steps (epochs) that the complete and pruned trials ran, against running all.

    `epochs_run` sums the number of steps each trial reported. Without pruning, every one of
    those trials would have run as many steps as the longest one, `max_epochs`.
    """

    trials: int
    epochs_run: int
    max_epochs: int

    @property
    def epochs_without_pruning(self) -> int:
        return self.trials * self.max_epochs

    @property
    def epochs_saved(self) -> int:
        return self.epochs_without_pruning - self.epochs_run

    @property
    def saved_fraction(self) -> float:
        full = self.epochs_without_pruning
        return self.epochs_saved / full if full else 0.0


@dataclass
class Plot:
    """One section of the report: a figure, or a note that explains why there is none."""

    slug: str
    title: str
    figure: go.Figure | None = None
    note: str | None = None


@dataclass
class Report:
    """The files, figures and pruning savings of one `write_report` call."""

    html_path: Path
    png_paths: list[Path] = field(default_factory=list)
    savings: PruningSavings | None = None
    plots: list[Plot] = field(default_factory=list)


def pruning_savings(trials: Sequence[FrozenTrial]) -> PruningSavings:
    """Count the steps that complete and pruned trials reported, and the most of any one."""
    from optuna.trial import TrialState

    counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    steps = [len(trial.intermediate_values) for trial in counted]
    return PruningSavings(
        trials=len(counted), epochs_run=sum(steps), max_epochs=max(steps, default=0)
    )


def write_report(study: optuna.Study, out_dir: Path, *, png: bool) -> Report:
    """Write the study's report to `out_dir`/report.html, and each plot as a PNG if `png`.

    The HTML page is written first, so it stays when writing the PNG files fails.
    """
    from plotly.offline import get_plotlyjs

    _make_folder(out_dir)
    trials = study.get_trials(deepcopy=False)
    savings = pruning_savings(trials)
    plots = build_plots(study)

    page = _render_page(study, trials, savings, plots, get_plotlyjs())
    html_path = out_dir / REPORT_FILE
    html_path.write_text(page, encoding="utf-8")
    report = Report(html_path=html_path, savings=savings, plots=plots)

    if png:
        report.png_paths = _write_pngs(plots, out_dir)
    return report


def build_plots(study: optuna.Study) -> list[Plot]:
    """Build the report's figures; a plot that needs more trials becomes a note."""
    trials = study.get_trials(deepcopy=False)
    return [
        _history_plot(study, trials),
        _intermediate_plot(study, trials),
        _importance_plot(study, trials),
        _parallel_coordinate_plot(study, trials),
    ]


def _make_folder(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} is a file; give a folder for the report")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise HpoError(f"cannot create the report folder {out_dir}: {e}") from e


# --- Plots ------------------------------------------------------------------------------------


def _history_plot(study: optuna.Study, trials: Sequence[FrozenTrial]) -> Plot:
    from optuna.visualization import plot_optimization_history, plot_pareto_front

    plot = Plot("optimization_history", "Optimization history")
    if not _complete(trials):
        plot.note = "No trial has completed yet, so there is no history to plot."
        return plot

    n_objectives = len(study.directions)
    if n_objectives == 1:
        plot.figure = plot_optimization_history(study, target_name=_metric_names(study)[0])
    elif n_objectives in (2, 3):
        plot.title = "Pareto front"
        plot.figure = plot_pareto_front(study, target_names=_metric_names(study))
    else:
        plot.note = f"A Pareto front of {n_objectives} objectives cannot be drawn in 2 or 3 axes."
    return plot


def _intermediate_plot(study: optuna.Study, trials: Sequence[FrozenTrial]) -> Plot:
    """Draw each trial's intermediate values; a pruned trial ends in a cross where it stopped."""
    import plotly.graph_objects as go

    plot = Plot("intermediate_values", "Intermediate values")
    reporting = [trial for trial in trials if trial.intermediate_values]
    if not reporting:
        plot.note = "No trial reported intermediate values."
        return plot

    figure = go.Figure()
    shown_in_legend: set[str] = set()
    for trial in reporting:
        state = trial.state.name
        steps = sorted(trial.intermediate_values)
        values = [trial.intermediate_values[step] for step in steps]
        color = _STATE_COLORS.get(state, _OTHER_STATE_COLOR)
        symbols = ["circle"] * len(steps)
        sizes = [6] * len(steps)
        if state == "PRUNED":
            symbols[-1] = "x"
            sizes[-1] = 12
        figure.add_trace(
            go.Scatter(
                x=steps,
                y=values,
                mode="lines+markers",
                name=state.lower(),
                legendgroup=state,
                showlegend=state not in shown_in_legend,
                line={"color": color, "dash": "solid" if state == "COMPLETE" else "dot"},
                marker={"symbol": symbols, "size": sizes},
                hovertemplate=f"trial {trial.number} ({state.lower()})<br>"
                "step %{x}: %{y}<extra></extra>",
            )
        )
        shown_in_legend.add(state)

    figure.update_layout(
        title="Intermediate values (a cross marks where a pruned trial stopped)",
        xaxis_title="step (epoch)",
        yaxis_title=_metric_names(study)[0],
        legend_title="state",
    )
    plot.figure = figure
    return plot


def _importance_plot(study: optuna.Study, trials: Sequence[FrozenTrial]) -> Plot:
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.search_space import intersection_search_space
    from optuna.visualization import plot_param_importances

    plot = Plot("param_importances", "Parameter importances")
    complete = _complete(trials)
    if len(complete) < 2:
        plot.note = (
            f"Skipped: parameter importances need at least 2 complete trials, "
            f"and the study has {len(complete)}."
        )
        return plot
    params = intersection_search_space(complete)
    if len(params) < 2:
        plot.note = (
            "Skipped: importances compare parameters that every complete trial has, and "
            f"there {'is' if len(params) == 1 else 'are'} {len(params)}."
        )
        return plot

    # A fixed seed makes the report of the same study the same every time.
    evaluator = FanovaImportanceEvaluator(seed=0)
    target_name = _metric_names(study)[0] if len(study.directions) == 1 else "Objective Value"
    plot.figure = plot_param_importances(study, evaluator=evaluator, target_name=target_name)
    return plot


def _parallel_coordinate_plot(study: optuna.Study, trials: Sequence[FrozenTrial]) -> Plot:
    from optuna.visualization import plot_parallel_coordinate

    plot = Plot("parallel_coordinate", "Parallel coordinates")
    if not _complete(trials):
        plot.note = "No trial has completed yet, so there are no parameters to compare."
        return plot

    names = _metric_names(study)
    if len(study.directions) == 1:
        plot.figure = plot_parallel_coordinate(study, target_name=names[0])
    else:
        plot.title = f"Parallel coordinates, colored by {names[0]}"
        plot.figure = plot_parallel_coordinate(
            study, target=lambda trial: trial.values[0], target_name=names[0]
        )
    return plot


def _complete(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    from optuna.trial import TrialState

    return [trial for trial in trials if trial.state == TrialState.COMPLETE]


def _metric_names(study: optuna.Study) -> list[str]:
    names = study.metric_names
    if names is not None:
        return names
    if len(study.directions) == 1:
        return ["Objective Value"]
    return [f"Objective {index}" for index in range(len(study.directions))]


# --- PNG files --------------------------------------------------------------------------------


def _write_pngs(plots: Sequence[Plot], out_dir: Path) -> list[Path]:
    """Write every figure as a PNG with kaleido, in one browser session for all of them."""
    import kaleido
    from kaleido.errors import BrowserFailedError, ChromeNotFoundError, KaleidoError

    drawn = [plot for plot in plots if plot.figure is not None]
    paths = [out_dir / f"{plot.slug}.png" for plot in drawn]
    specs = [
        {
            "fig": plot.figure,
            "path": path,
            "opts": {"format": "png", "width": _PLOT_WIDTH, "height": _PLOT_HEIGHT},
        }
        for plot, path in zip(drawn, paths, strict=True)
    ]
    if not specs:
        return []

    # mathjax=False keeps kaleido's page from loading MathJax from a CDN; no plot here uses it.
    options = {"mathjax": False, "timeout": _KALEIDO_TIMEOUT_S}
    try:
        kaleido.write_fig_from_object_sync(specs, kopts=options, cancel_on_error=True)
    except ChromeNotFoundError as e:
        browser_path = os.environ.get("BROWSER_PATH")
        found = f"BROWSER_PATH={browser_path} is not one" if browser_path else "found none"
        raise HpoError(
            f"cannot write PNG files: kaleido needs Chrome or Chromium and {found}. Install "
            "one (on Debian: apt-get install chromium), or set BROWSER_PATH to its binary. "
            f"The HTML report is in {out_dir / REPORT_FILE}."
        ) from e
    except (BrowserFailedError, KaleidoError) as e:
        raise HpoError(
            f"cannot write PNG files: kaleido failed to render with Chrome: {e}. "
            f"The HTML report is in {out_dir / REPORT_FILE}."
        ) from e
    return paths


# --- HTML -------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1060px; color: #222; }
h1 code { font-size: 0.9em; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.note { color: #555; font-style: italic; }
.formula { font-family: ui-monospace, monospace; background: #f4f4f4; padding: 0.5em; }
.plot { height: 540px; }
"""


def _render_page(
    study: optuna.Study,
    trials: Sequence[FrozenTrial],
    savings: PruningSavings,
    plots: Sequence[Plot],
    plotly_js: str,
) -> str:
    name = html.escape(study.study_name)
    sections = [
        _summary_section(study, trials),
        _savings_section(savings),
        *(_plot_section(plot) for plot in plots),
        _top_trials_section(study, trials),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{name}: hpo study report</title>\n"
        f"<style>{_STYLE}</style>\n"
        f'<script type="text/javascript">{plotly_js}</script>\n'
        "</head>\n<body>\n"
        f"<h1>Study <code>{name}</code></h1>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )


def _summary_section(study: optuna.Study, trials: Sequence[FrozenTrial]) -> str:
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    listed = ", ".join(f"{count} {state}" for state, count in sorted(counts.items()))
    directions = ", ".join(direction.name.lower() for direction in study.directions)
    metrics = ", ".join(_metric_names(study))

    best = ""
    complete = _complete(trials)
    if len(study.directions) == 1 and complete:
        trial = study.best_trial
        best = f" Best value {_number(trial.value)} in trial {trial.number}."
    generated = datetime.now().isoformat(timespec="seconds")
    return (
        f'<p id="summary">{len(trials)} trials ({html.escape(listed) or "none"}). '
        f"Objective: {html.escape(metrics)} ({html.escape(directions)}).{html.escape(best)} "
        f"Generated by hpo at {generated}.</p>"
    )


def _savings_section(savings: PruningSavings) -> str:
    formula = (
        "epochs run = sum over complete and pruned trials of the number of steps each "
        "reported<br>epochs without pruning = (number of complete and pruned trials) &times; "
        "(the most steps any of them reported)"
    )
    if savings.trials == 0 or savings.max_epochs == 0:
        body = '<p class="note">No complete or pruned trial reported intermediate values.</p>'
    else:
        body = (
            f"<p>The {savings.trials} complete and pruned trials ran "
            f'<strong id="epochs-run">{savings.epochs_run}</strong> epochs. Running every one '
            f"of them for the {savings.max_epochs} epochs of the longest would have taken "
            f'<strong id="epochs-without-pruning">{savings.epochs_without_pruning}</strong>, '
            f'so pruning saved <strong id="epochs-saved">{savings.epochs_saved}</strong> '
            f"epochs ({savings.saved_fraction:.0%}).</p>"
        )
    return (
        '<h2 id="pruning-savings">Training saved by pruning</h2>\n'
        f'{body}\n<p class="formula">{formula}</p>\n'
        '<p class="note">An epoch here is one reported step (one trial.report call).</p>'
    )


def _plot_section(plot: Plot) -> str:
    heading = f'<h2 id="{plot.slug}">{html.escape(plot.title)}</h2>'
    if plot.figure is None:
        return f'{heading}\n<p class="note">{html.escape(plot.note or "")}</p>'

    plot.figure.update_layout(width=None, height=_PLOT_HEIGHT, autosize=True)
    div = plot.figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        config=_PLOT_CONFIG,
        default_width="100%",
        default_height=f"{_PLOT_HEIGHT}px",
    )
    return f'{heading}\n<div class="plot">{div}</div>'


def _top_trials_section(study: optuna.Study, trials: Sequence[FrozenTrial]) -> str:
    complete = _complete(trials)
    if len(study.directions) == 1:
        heading = f"Top {min(TOP_TRIALS, len(complete))} trials"
        reverse = study.direction.name == "MAXIMIZE"
        top = sorted(complete, key=lambda trial: trial.values[0], reverse=reverse)[:TOP_TRIALS]
    else:
        heading = "Pareto front"
        top = sorted(study.best_trials, key=lambda trial: trial.number)
    if not top:
        return f'<h2 id="top-trials">{heading}</h2>\n<p class="note">No complete trial yet.</p>'

    header = ["trial", *_metric_names(study), "parameters", "duration", "steps", "user attributes"]
    rows = []
    for trial in top:
        cells = [
            f'<td class="number">{trial.number}</td>',
            *(f'<td class="number">{_number(value)}</td>' for value in trial.values),
            f"<td>{html.escape(_pairs(trial.params))}</td>",
            f'<td class="number">{_duration(trial)}</td>',
            f'<td class="number">{len(trial.intermediate_values)}</td>',
            f"<td>{html.escape(_pairs(_shown_attrs(trial)))}</td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{html.escape(column)}</th>" for column in header)
    return (
        f'<h2 id="top-trials">{heading}</h2>\n'
        f'<table id="top-trials-table">\n<tr>{head}</tr>\n' + "\n".join(rows) + "\n</table>"
    )


def _shown_attrs(trial: FrozenTrial) -> dict[str, object]:
    return {
        key: value
        for key, value in trial.user_attrs.items()
        if isinstance(value, (int, float, str, bool))
    }


def _pairs(mapping: dict[str, object]) -> str:
    return ", ".join(f"{key}={_number(value)}" for key, value in mapping.items())


def _number(value: object) -> str:
    if isinstance(value, float) and not isinstance(value, bool):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    return str(value)


def _duration(trial: FrozenTrial) -> str:
    duration = trial.duration
    return "-" if duration is None else f"{duration.total_seconds():.1f} s"
