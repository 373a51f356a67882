"""Exceptions that reach the user.

Every error that hpo raises for a user's mistake or for a failure while running derives from
`HpoError`. The CLI turns one into a message and an exit status in a single place, so the exit
status is an attribute of the class: 2 for a bad command line or study file, 1 for a failure
while running.
"""

from __future__ import annotations


class HpoError(Exception):
    """Root of every error that hpo reports to the user; the message is its first line."""

    exit_code = 1


class UsageError(HpoError):
    """A bad command line: an unknown study, a conflicting flag, a missing argument."""

    exit_code = 2


class SpecError(UsageError):
    """An invalid study file, with the file, line and key path of each problem.

    `problems` contains one formatted line per problem, such as
    ``study.yaml:12: sampler.n_startup_trials: must be >= 0, but got -3``.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        # One problem per line, so the first line of the message already names a problem.
        super().__init__("\n".join(problems))


class ObjectiveError(UsageError):
    """An objective that cannot be imported, or fixed arguments it cannot take."""


class DatasetError(UsageError):
    """A dataset that cannot be read: a missing folder, missing files, an unreadable archive."""


class StorageError(HpoError):
    """A storage URL that cannot be reached or used. The message carries the masked URL."""


class ClusterError(HpoError):
    """A Ray cluster that cannot run the trials: unreachable, or short of the resources asked."""
