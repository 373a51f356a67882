"""The Ray actor that runs objectives, and the trial object an objective sees there.

One worker actor holds one share of the cluster (its CPUs and GPUs) and runs one trial at a
time, trial after trial, so a dataset that the objective caches stays loaded between trials.
The objective runs in a thread of the actor. Its trial calls become events in a queue, which
the launcher drains with `TrialWorker.exchange`; a call that needs an answer blocks until the
launcher's next `exchange` brings the `Reply`.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from hpo.search._messages import (
    Completed,
    Event,
    Failed,
    ParamKind,
    ParamValue,
    Pruned,
    Reply,
    Report,
    SetUserAttr,
    Started,
    Suggest,
)

_logger = logging.getLogger(__name__)

# The traceback summary stored on a failed trial keeps its last characters, where the error is.
_MAX_FAILURE_SUMMARY_CHARS = 4000


class WorkerTrial:
    """A trial as seen by an objective on a worker, with the methods of `optuna.Trial` it needs.

    Parameters from the study file's search space arrive already suggested; a ``suggest_*``
    call for one of them returns that value without asking the launcher.
    """

    def __init__(
        self,
        number: int,
        params: Mapping[str, ParamValue],
        send: Callable[..., Reply],
    ) -> None:
        self._number = number
        self._params = dict(params)
        self._user_attrs: dict[str, object] = {}
        self._send = send
        self._last_prune_decision = False

    @property
    def number(self) -> int:
        return self._number

    @property
    def params(self) -> dict[str, Any]:
        return dict(self._params)

    @property
    def user_attrs(self) -> dict[str, Any]:
        return dict(self._user_attrs)

    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float:
        value = self._suggest(Suggest(name, "float", low=low, high=high, step=step, log=log))
        return float(cast("float", value))

    def suggest_int(
        self, name: str, low: int, high: int, *, step: int = 1, log: bool = False
    ) -> int:
        value = self._suggest(Suggest(name, "int", low=low, high=high, step=step, log=log))
        return int(cast("int", value))

    def suggest_categorical(self, name: str, choices: Sequence[ParamValue]) -> ParamValue:
        return self._suggest(Suggest(name, "categorical", choices=tuple(choices)))

    def report(self, value: float, step: int) -> None:
        reply = self._send(Report(step=int(step), value=float(value)), wait=True)
        self._last_prune_decision = bool(reply.value)

    def should_prune(self) -> bool:
        """Return the pruner's decision for the last reported value, as the launcher sent it."""
        return self._last_prune_decision

    def set_user_attr(self, key: str, value: object) -> None:
        self._user_attrs[key] = value
        self._send(SetUserAttr(key, value), wait=False)

    def _suggest(self, request: Suggest) -> ParamValue:
        if request.name in self._params:
            return self._params[request.name]

        reply = self._send(request, wait=True)
        self._params[request.name] = reply.value
        return reply.value


class TrialWorker:
    """Runs one trial at a time for the launcher; used as a Ray actor."""

    def __init__(
        self,
        objective_name: str,
        objective_args: Mapping[str, object],
        search_paths: Sequence[str] = (),
    ) -> None:
        # A user's objective module may live in the launcher's folder or the study file's;
        # on a worker of the same machine those folders exist too.
        sys.path[:0] = [path for path in search_paths if path not in sys.path]
        from hpo.objectives import load_objective

        self._objective = load_objective(objective_name)
        self._objective_args = dict(objective_args)
        self._events: queue.Queue[Event] = queue.Queue()
        self._replies: queue.Queue[Reply] = queue.Queue()

    def start(self, number: int, params: Mapping[str, ParamValue]) -> None:
        """Start the objective for trial `number` in a thread and return at once."""
        self._events = queue.Queue()
        self._replies = queue.Queue()
        trial = WorkerTrial(number, params, self._send)
        thread = threading.Thread(
            target=self._run, args=(trial,), name=f"trial-{number}", daemon=True
        )
        thread.start()

    def exchange(self, reply: Reply | None) -> list[Event]:
        """Deliver the launcher's reply, if any, and return the events since the last call.

        Blocks until at least one event is there.
        """
        if reply is not None:
            self._replies.put(reply)

        events = [self._events.get()]
        while True:
            try:
                events.append(self._events.get_nowait())
            except queue.Empty:
                return events

    def _send(self, event: Event, *, wait: bool) -> Reply:
        self._events.put(event)
        if not wait:
            return Reply()

        reply = self._replies.get()
        if reply.error is not None:
            raise RuntimeError(reply.error)
        return reply

    def _run(self, trial: WorkerTrial) -> None:
        import optuna

        self._send(_started_event(), wait=False)
        try:
            result = self._objective(trial, **self._objective_args)
            final: Event = Completed(_as_values(result))
        except optuna.TrialPruned as e:
            final = Pruned(str(e))
        except BaseException as e:
            _logger.debug("Trial %d raised %r", trial.number, e)
            summary = "".join(traceback.format_exception(e))
            final = Failed(summary[-_MAX_FAILURE_SUMMARY_CHARS:])
        self._send(final, wait=False)


def _started_event() -> Started:
    gpu_ids: tuple[str, ...] = ()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        gpu_ids = tuple(visible.split(","))
    return Started(hostname=socket.gethostname(), pid=os.getpid(), gpu_ids=gpu_ids)


def _as_values(result: object) -> tuple[float, ...]:
    """Turn an objective's return value into a tuple of floats, as `Study.tell` takes them."""
    items = result if isinstance(result, Sequence) and not isinstance(result, str) else (result,)
    values = []
    for item in items:
        try:
            value = float(item)  # type: ignore[arg-type]
        except (TypeError, ValueError) as e:
            raise TypeError(
                f"the objective must return a float or a sequence of floats, but got {result!r}"
            ) from e
        if math.isnan(value):
            raise ValueError(f"the objective returned NaN: {result!r}")
        values.append(value)
    return tuple(values)


__all__ = ["ParamKind", "TrialWorker", "WorkerTrial"]
