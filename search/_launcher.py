"""The launcher: one process that owns a study and runs its trials on Ray workers.

The launcher is the only process that writes to the study. It asks Optuna for a trial,
suggests the search space's parameters on it, and hands them to a worker actor. While the
objective runs, the worker's events come back through `TrialWorker.exchange`: the launcher
writes each intermediate value, asks the study's own pruner whether to stop, answers
define-by-run ``suggest_*`` calls, and finally tells Optuna the result. All database calls
happen on the launcher's main thread, so SQLite sees one writer and the number of database
connections does not grow with the number of parallel trials.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from hpo.errors import ClusterError, DatasetError, ObjectiveError
from hpo.search._messages import (
    Completed,
    Event,
    Failed,
    Pruned,
    Reply,
    Report,
    SetUserAttr,
    Started,
    Suggest,
)
from hpo.storage._liveness import Heartbeat

if TYPE_CHECKING:
    import optuna
    import ray

    from hpo.search._spec import StudySpec

_logger = logging.getLogger(__name__)

# Built-in objectives whose `data_dir` and `path` arguments name files.
_BUILTIN_OBJECTIVES_WITH_PATHS = ("cnn",)
# How often the progress display's counts are read from the database while nothing changes
# here, in seconds.
_RECOUNT_INTERVAL_S = 1.0
# How long the main loop waits for a worker event before it looks at time limits, Ctrl-C and
# the progress display again, in seconds.
_POLL_INTERVAL_S = 0.2
# User attributes that hpo writes on each trial, besides the objective's own. The liveness
# module adds ``retry_of`` on retries.
ATTR_FAIL_REASON = "fail_reason"
ATTR_WORKER_HOST = "worker_host"
ATTR_GPU_IDS = "gpu_ids"
ATTR_DURATION_S = "duration_s"


class ProgressSink(Protocol):
    """Receives the launch's state after every change; the CLI renders it."""

    def update(self, state: LaunchState) -> None: ...


class _NullProgress:
    def update(self, state: LaunchState) -> None:
        pass


@dataclass
class LaunchState:
    """Counts of the study's trials as the launcher last read them, for the progress display."""

    study_name: str
    n_trials: int | None
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    started_at: float = field(default_factory=time.monotonic)
    deadline: float | None = None
    stopping: bool = False

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed


@dataclass
class LaunchResult:
    """The outcome of a launch: the study, the trials it ran and why it stopped.

    `interrupted` is set when Ctrl-C stopped the launch before its budget was spent, and
    `cancelled` when a second Ctrl-C also cancelled the running trials.
    """

    study: optuna.Study
    storage_url: str
    created: bool
    ran: int
    state: LaunchState
    interrupted: bool = False
    cancelled: bool = False


@dataclass
class _ActiveTrial:
    trial: optuna.Trial
    worker: Any
    started_at: float
    pending: Any = None
    running: bool = False


def launch(
    spec: StudySpec,
    *,
    storage_url: str,
    spec_path: Path | None = None,
    n_trials: int | None = None,
    ray_address: str | None = None,
    allow_space_change: bool = False,
    progress: ProgressSink | None = None,
) -> LaunchResult:
    """Create or continue the study of `spec` and run trials until its budget is spent.

    Every check that can fail on the user's input runs before anything is written to the
    database: the objective imports, its arguments and dataset are valid, the storage is
    reachable, and a continued study has the same directions and search space.
    """
    from hpo.search._samplers import build_pruner, build_sampler
    from hpo.search._spec import render_study_name
    from hpo.search._study import check_directions, check_space, create_or_load, find_study
    from hpo.storage import mask_url, open_storage, study_lock

    progress = progress or _NullProgress()
    spec = check_spec(spec, spec_path=spec_path)
    search_paths = _objective_search_paths(spec_path)

    study_name = render_study_name(spec.study.name, datetime.now())
    total = n_trials if n_trials is not None else spec.budget.n_trials
    storage = open_storage(
        storage_url,
        heartbeat_interval=spec.study.heartbeat_interval,
        grace_period=spec.study.grace_period,
    )
    existing = find_study(storage, study_name)
    if existing is not None:
        check_directions(existing, spec)
        check_space(existing, spec, allow_change=allow_space_change)
        _recover(existing, spec, own_trial_ids=set())
        if not _may_ask(existing, total):
            state = LaunchState(study_name=study_name, n_trials=total)
            _count_trials(existing, state)
            _logger.info(
                "Study %r already has %d of %d trials; nothing to run. "
                "Pass --n-trials with a higher total to run more.",
                study_name,
                state.finished,
                total,
            )
            return LaunchResult(existing, storage_url, created=False, ran=0, state=state)

    with _sigint_counter() as sigints, _ray_cluster(ray_address or spec.cluster.address):
        _check_cluster_resources(spec)
        with study_lock(storage, study_name):
            study, created = create_or_load(
                storage,
                spec,
                study_name,
                sampler=build_sampler(spec),
                pruner=build_pruner(spec),
                existing=existing,
            )
            if not created and spec.sampler.seed is not None:
                study.sampler = build_sampler(_reseeded(spec, study))
        _logger.info(
            "%s study %r in %s: sampler %s, pruner %s, %s trials, %s at once",
            "Created" if created else "Continuing",
            study_name,
            mask_url(storage_url),
            type(study.sampler).__name__,
            type(study.pruner).__name__,
            total if total is not None else "unlimited",
            spec.resources.parallelism,
        )

        state = LaunchState(study_name=study_name, n_trials=total)
        if spec.budget.timeout is not None:
            state.deadline = state.started_at + spec.budget.timeout
        runner = _TrialRunner(spec, study, storage, state, progress, total, search_paths)
        runner.run(sigints)

    _count_trials(study, state)
    state.running = 0
    state.waiting = 0
    progress.update(state)
    return LaunchResult(
        study,
        storage_url,
        created,
        ran=runner.started,
        state=state,
        interrupted=runner.interrupted,
        cancelled=runner.cancelled,
    )


def check_spec(spec: StudySpec, *, spec_path: Path | None) -> StudySpec:
    """Check what loading the study file cannot: the objective imports, its arguments fit.

    Returns the spec with the built-in objective's relative `data_dir` and `path` resolved
    against the study file's folder, where a reader of the file expects them. Writes nothing.
    """
    from hpo.objectives import check_objective

    if spec_path is not None and spec.objective.name in _BUILTIN_OBJECTIVES_WITH_PATHS:
        folder = spec_path.resolve().parent
        args = dict(spec.objective.args)
        for key in ("data_dir", "path"):
            value = args.get(key)
            if isinstance(value, str) and not Path(value).expanduser().is_absolute():
                args[key] = str(folder / value)
        objective = spec.objective.model_copy(update={"args": args})
        spec = spec.model_copy(update={"objective": objective})

    search_paths = _objective_search_paths(spec_path)
    sys.path[:0] = [path for path in search_paths if path not in sys.path]
    try:
        check_objective(spec.objective.name, spec.objective.args, param_names=spec.space.keys())
    except (ObjectiveError, DatasetError) as e:
        if spec_path is None:
            raise
        # Name the file, as errors found while loading it do.
        raise type(e)(f"{spec_path}: objective: {e}") from e
    return spec


class _TrialRunner:
    """The main loop: keeps up to `parallelism` trials running and handles their events."""

    def __init__(
        self,
        spec: StudySpec,
        study: optuna.Study,
        storage: optuna.storages.RDBStorage,
        state: LaunchState,
        progress: ProgressSink,
        total: int | None,
        search_paths: list[str],
    ) -> None:
        self._spec = spec
        self._study = study
        self._storage = storage
        self._state = state
        self._progress = progress
        self._total = total
        self._search_paths = search_paths
        self._idle_workers: list[Any] = []
        self._active: dict[Any, _ActiveTrial] = {}
        self._heartbeat = Heartbeat(storage, spec.study.heartbeat_interval)
        self._last_recovery = time.monotonic()
        self._counted_at = 0.0
        self._finished_since_count = True
        self.started = 0
        self.interrupted = False
        self.cancelled = False

    def run(self, sigints: Callable[[], int]) -> None:
        import ray

        while True:
            if sigints() >= 2:
                self._cancel_all("cancelled by a second Ctrl-C or by SIGTERM")
                self.cancelled = True
                return
            if sigints() == 1 and not self.interrupted:
                self.interrupted = True
                self._state.stopping = True
                _logger.warning(
                    "Ctrl-C: no new trials; waiting for %d running trials. "
                    "Press Ctrl-C again to cancel them.",
                    len(self._active),
                )

            self._fill_slots()
            if not self._active:
                return

            pending = [active.pending for active in self._active.values()]
            ready, rest = ray.wait(pending, num_returns=1, timeout=_POLL_INTERVAL_S)
            if ready and rest:
                more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
                ready += more
            for ref in ready:
                self._handle(ref)
            self._enforce_trial_timeout()
            self._heartbeat.beat(active.trial._trial_id for active in self._active.values())
            self._recover_periodically()
            self._refresh_counts()

    def _fill_slots(self) -> None:
        while (
            not self._state.stopping
            and len(self._active) < self._spec.resources.parallelism
            and not self._past_deadline()
            and not self._grid_exhausted()
        ):
            if not self._start_trial():
                return

    def _recover_periodically(self) -> None:
        """Fail and retry trials of dead launchers, as often as half the grace period."""
        interval = self._spec.study.grace_period / 2
        if time.monotonic() - self._last_recovery < interval:
            return
        self._last_recovery = time.monotonic()
        own = {active.trial._trial_id for active in self._active.values()}
        _recover(self._study, self._spec, own_trial_ids=own)

    def _grid_exhausted(self) -> bool:
        from optuna.samplers import GridSampler

        sampler = self._study.sampler
        if isinstance(sampler, GridSampler) and sampler.is_exhausted(self._study):
            if not self._state.stopping:
                _logger.info("Every point of the grid has a trial; no new trials.")
            self._state.stopping = True
            return True
        return False

    def _past_deadline(self) -> bool:
        deadline = self._state.deadline
        if deadline is not None and time.monotonic() >= deadline:
            if not self._state.stopping:
                _logger.info("Reached budget.timeout; no new trials.")
            self._state.stopping = True
            return True
        return False

    def _start_trial(self) -> bool:
        """Ask for a trial and start it on a worker; return False when the budget is spent."""
        from hpo.search._space import suggest_params
        from hpo.storage import study_lock

        # The lock makes counting and asking one step for every launcher of the study, so
        # two launchers never both take the last trial of the budget.
        with study_lock(self._storage, self._study.study_name):
            if not _may_ask(self._study, self._total):
                return False
            with warnings.catch_warnings():
                # Optuna 5.1 warns on each ask when heartbeats are on, since its own heartbeat
                # thread runs only in Study.optimize. The launcher records them itself.
                warnings.filterwarnings(
                    "ignore", message="Heartbeat of storage is supposed", category=UserWarning
                )
                trial = self._study.ask()
            self._heartbeat.start(trial._trial_id)
        params = suggest_params(trial, self._spec.space)
        worker = self._acquire_worker()
        worker.start.remote(trial.number, params)
        pending = worker.exchange.remote(None)
        self._active[pending] = _ActiveTrial(trial, worker, time.monotonic(), pending)
        self.started += 1
        self._refresh_counts()
        return True

    def _acquire_worker(self) -> Any:
        import ray

        from hpo.search._worker import TrialWorker

        if self._idle_workers:
            return self._idle_workers.pop()

        resources = self._spec.resources
        actor_class = ray.remote(TrialWorker)
        return actor_class.options(
            num_cpus=resources.cpus,
            num_gpus=resources.gpus,
        ).remote(self._spec.objective.name, self._spec.objective.args, self._search_paths)

    def _handle(self, ref: ray.ObjectRef[list[Event]]) -> None:
        import ray
        import ray.exceptions
        from optuna.exceptions import UpdateFinishedTrialError

        active = self._active.pop(ref)
        try:
            events = ray.get(ref)
        except ray.exceptions.RayActorError as e:
            self._fail_worker_died(active, e)
            return
        except ray.exceptions.RayTaskError as e:
            self._finish_failed(active, f"the worker raised an error: {e}")
            self._release_worker(active.worker)
            return

        reply: Reply | None = None
        try:
            for event in events:
                if isinstance(event, (Completed, Pruned, Failed)):
                    self._finish(active, event)
                    self._release_worker(active.worker)
                    return
                reply = self._handle_event(active, event)
        except UpdateFinishedTrialError:
            # Another launcher failed this trial as stale, which happens when this launcher
            # could not record heartbeats for a grace period, and enqueued a retry of it.
            _logger.warning(
                "Trial %d was failed by another launcher while it ran here; stopping it, "
                "since its retry takes its place.",
                active.trial.number,
            )
            ray.kill(active.worker)
            return

        active.pending = active.worker.exchange.remote(reply)
        self._active[active.pending] = active

    def _handle_event(self, active: _ActiveTrial, event: Event) -> Reply | None:
        trial = active.trial
        if isinstance(event, Started):
            # Time limits and durations count from here, not from the ask: a trial waiting for
            # a free worker, or for a new worker to import its modules, has not started yet.
            active.running = True
            active.started_at = time.monotonic()
            trial.set_user_attr(ATTR_WORKER_HOST, event.hostname)
            if event.gpu_ids:
                trial.set_user_attr(ATTR_GPU_IDS, ",".join(event.gpu_ids))
            return None
        if isinstance(event, SetUserAttr):
            trial.set_user_attr(event.key, event.value)
            return None
        if isinstance(event, Report):
            return _answer(lambda: _report(trial, event))
        if isinstance(event, Suggest):
            return _answer(lambda: _suggest(trial, event))
        raise AssertionError(f"unexpected event {event!r}")

    def _finish(self, active: _ActiveTrial, event: Completed | Pruned | Failed) -> None:
        from optuna.trial import TrialState

        trial = active.trial
        self._finished_since_count = True
        trial.set_user_attr(ATTR_DURATION_S, round(time.monotonic() - active.started_at, 3))
        if isinstance(event, Failed):
            self._finish_failed(active, event.summary)
            return

        if isinstance(event, Pruned):
            frozen = self._study.tell(trial, state=TrialState.PRUNED)
            message = f" {event.message}" if event.message else ""
            _logger.info("Trial %d pruned.%s", frozen.number, message)
            return

        frozen = self._study.tell(trial, list(event.values))
        if frozen.state == TrialState.COMPLETE:
            _log_completed(self._study, frozen)
        else:
            _logger.warning("Trial %d ended %s.", frozen.number, frozen.state.name)

    def _finish_failed(self, active: _ActiveTrial, reason: str) -> optuna.trial.FrozenTrial:
        from optuna.trial import TrialState

        trial = active.trial
        self._finished_since_count = True
        trial.set_user_attr(ATTR_FAIL_REASON, reason)
        frozen = self._study.tell(trial, state=TrialState.FAIL)
        last_line = reason.strip().splitlines()[-1] if reason.strip() else reason
        _logger.warning(
            "Trial %d failed with parameters: %s because of the following error: %s",
            trial.number,
            trial.params,
            last_line,
        )
        return frozen

    def _fail_worker_died(self, active: _ActiveTrial, error: Exception) -> None:
        """Fail a trial whose worker process died, and enqueue its parameters again."""
        from hpo.storage import retry_trial

        reason = f"the worker process died: {str(error).strip().splitlines()[0]}"
        frozen = self._finish_failed(active, reason)
        retry_trial(self._study, frozen, max_retries=self._spec.budget.max_retries)

    def _enforce_trial_timeout(self) -> None:
        import ray

        limit = self._spec.budget.trial_timeout
        if limit is None:
            return

        now = time.monotonic()
        for ref, active in list(self._active.items()):
            if not active.running or now - active.started_at < limit:
                continue
            del self._active[ref]
            ray.kill(active.worker)
            self._finish_failed(
                active,
                f"timed out after {limit:g} s (budget.trial_timeout); the worker was stopped",
            )

    def _cancel_all(self, reason: str) -> None:
        import ray

        from hpo.storage import retry_trial

        for active in self._active.values():
            ray.kill(active.worker)
            frozen = self._finish_failed(active, reason)
            # A cancelled trial did nothing wrong, so its retry does not use up max_retries.
            retry_trial(self._study, frozen, max_retries=None)
        self._active.clear()

    def _release_worker(self, worker: Any) -> None:
        self._idle_workers.append(worker)

    def _refresh_counts(self) -> None:
        # Other launchers write the study too, so the counts are read again at least once a
        # second. Between those reads, only a trial that this launcher finished triggers one.
        now = time.monotonic()
        if self._finished_since_count or now - self._counted_at >= _RECOUNT_INTERVAL_S:
            _count_trials(self._study, self._state)
            self._counted_at = now
            self._finished_since_count = False
        self._state.running = sum(1 for active in self._active.values() if active.running)
        self._state.waiting = len(self._active) - self._state.running
        self._progress.update(self._state)


def _answer(call: Callable[[], Any]) -> Reply:
    """Run a trial call for a worker and wrap its result, or its error, in a `Reply`."""
    try:
        return Reply(value=call())
    except Exception as e:
        return Reply(error=f"{type(e).__name__}: {e}")


def _report(trial: optuna.Trial, event: Report) -> bool:
    trial.report(event.value, event.step)
    return trial.should_prune()


def _suggest(trial: optuna.Trial, event: Suggest) -> Any:
    if event.kind == "float":
        return trial.suggest_float(
            event.name,
            float(event.low or 0),
            float(event.high or 0),
            step=event.step,
            log=event.log,
        )
    if event.kind == "int":
        return trial.suggest_int(
            event.name,
            int(event.low or 0),
            int(event.high or 0),
            step=int(event.step or 1),
            log=event.log,
        )
    return trial.suggest_categorical(event.name, list(event.choices))


def _log_completed(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
    """Log a finished trial in the words of Optuna's own `study.optimize`."""
    values = frozen.values or []
    if len(values) > 1:
        _logger.info(
            "Trial %d finished with values: %s and parameters: %s.",
            frozen.number,
            values,
            frozen.params,
        )
        return

    best = study.best_trial
    _logger.info(
        "Trial %d finished with value: %s and parameters: %s. Best is trial %d with value: %s.",
        frozen.number,
        values[0],
        frozen.params,
        best.number,
        best.value,
    )


def _reseeded(spec: StudySpec, study: optuna.Study) -> StudySpec:
    """Give a continued study's sampler a seed of its own launch.

    The file's seed makes the study's first launch reproducible. A later or concurrent launch
    with the same seed would draw the same random parameters again, so it mixes in the number
    of trials so far and this process's host and id.
    """
    seed = spec.sampler.seed
    n_trials = len(study._storage.get_all_trials(study._study_id, deepcopy=False))
    text = f"{seed}:{n_trials}:{socket.gethostname()}:{os.getpid()}"
    launch_seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")
    _logger.info(
        "Sampler seed %d for this launch: seed %s belongs to the study's first launch.",
        launch_seed,
        seed,
    )
    sampler = spec.sampler.model_copy(update={"seed": launch_seed})
    return spec.model_copy(update={"sampler": sampler})


def _may_ask(study: optuna.Study, total: int | None) -> bool:
    """Return whether a new trial may start: a retry waits, or the budget is not yet spent."""
    from optuna.trial import TrialState

    from hpo.storage import count_budget_trials

    trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
    if any(trial.state == TrialState.WAITING for trial in trials):
        return True
    return total is None or count_budget_trials(study, trials) < total


def _recover(study: optuna.Study, spec: StudySpec, *, own_trial_ids: set[int]) -> None:
    from hpo.storage import recover_stale_trials

    recover_stale_trials(
        study,
        grace_period_s=spec.study.grace_period,
        max_retries=spec.budget.max_retries,
        own_trial_ids=own_trial_ids,
    )


def _count_trials(study: optuna.Study, state: LaunchState) -> None:
    from optuna.trial import TrialState

    trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
    state.complete = sum(1 for t in trials if t.state == TrialState.COMPLETE)
    state.pruned = sum(1 for t in trials if t.state == TrialState.PRUNED)
    state.failed = sum(1 for t in trials if t.state == TrialState.FAIL)

    if len(study.directions) == 1 and state.complete:
        best = study.best_trial
        state.best_value = best.value
        state.best_trial = best.number


def _objective_search_paths(spec_path: Path | None) -> list[str]:
    """Folders searched for a user's objective module: the current one and the study file's."""
    paths = [str(Path.cwd())]
    if spec_path is not None:
        folder = str(spec_path.resolve().parent)
        if folder not in paths:
            paths.append(folder)
    return paths


@contextmanager
def _ray_cluster(address: str | None) -> Iterator[None]:
    """Join the Ray cluster at `address`, or start a local one; reuse one already joined."""
    import ray

    if ray.is_initialized():
        yield
        return

    if not _logger.isEnabledFor(logging.DEBUG):
        # Ray logs notices at start, such as how to turn token authentication off, which
        # would only distract from the study; -vv shows them.
        logging.getLogger("ray").setLevel(logging.ERROR)

    try:
        # A terminal sends Ctrl-C to the whole foreground process group. The processes of a
        # local cluster inherit an ignored SIGINT, so only the launcher gets it and stops its
        # trials in order, instead of losing its cluster underneath them.
        with _sigint_ignored(), _without_storage_variable():
            # "local" starts a new cluster even where $RAY_ADDRESS or an earlier `ray start`
            # names one, because joining a cluster takes an explicit address. A local cluster
            # picks free ports itself, so it never takes Ray's default head port 6379, which
            # Redis may hold.
            ray.init(
                address=address or "local",
                include_dashboard=False,
                configure_logging=False,
                log_to_driver=True,
            )
    except (ConnectionError, ValueError, RuntimeError) as e:
        raise ClusterError(f"cannot join the Ray cluster at {address}: {e}") from e
    try:
        yield
    finally:
        ray.shutdown()


def _check_cluster_resources(spec: StudySpec) -> None:
    import ray

    available = ray.cluster_resources()  # type: ignore[no-untyped-call]
    resources = spec.resources
    if resources.gpus > 0 and available.get("GPU", 0) < resources.gpus:
        raise ClusterError(
            f"each trial needs {resources.gpus:g} GPU, but the Ray cluster has "
            f"{available.get('GPU', 0):g}; set resources.gpus: 0 to run on CPUs, or join a "
            "cluster with GPUs (--ray-address)"
        )
    if available.get("CPU", 0) < resources.cpus:
        raise ClusterError(
            f"each trial needs {resources.cpus:g} CPUs, but the Ray cluster has "
            f"{available.get('CPU', 0):g}; lower resources.cpus"
        )


@contextmanager
def _without_storage_variable() -> Iterator[None]:
    """Hide $HPO_STORAGE from the processes of a cluster that starts in the block.

    Workers inherit the environment of the local cluster, and the URL may carry a password,
    which workers never need: they do not open the database.
    """
    from hpo.storage import STORAGE_ENV_VAR

    saved = os.environ.pop(STORAGE_ENV_VAR, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[STORAGE_ENV_VAR] = saved


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        # Signals can only be handled on the main thread; elsewhere Ctrl-C is not ours.
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _sigint_counter() -> Iterator[Callable[[], int]]:
    """Count Ctrl-C presses while the block runs, instead of raising KeyboardInterrupt.

    SIGTERM, which `docker stop`, systemd and Kubernetes send, counts as two presses: the
    running trials are cancelled and enqueued again, since the process is about to be killed.
    """
    count = 0

    def handle_sigint(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count += 1

    def handle_sigterm(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count = max(count, 2)

    try:
        previous_sigint = signal.signal(signal.SIGINT, handle_sigint)
        previous_sigterm = signal.signal(signal.SIGTERM, handle_sigterm)
    except ValueError:
        # Signals can only be handled on the main thread; elsewhere Ctrl-C is not ours.
        yield lambda: count
        return
    try:
        yield lambda: count
    finally:
        signal.signal(signal.SIGINT, previous_sigint)
        signal.signal(signal.SIGTERM, previous_sigterm)
