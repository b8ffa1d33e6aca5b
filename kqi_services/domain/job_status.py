"""The status vocabulary of jobs and the transitions the engine allows.

    Queued ──► Running ──► Completed   (the command exited 0)
      │           ├──────► Failed      (the command exited non-zero, or a step of the flow failed)
      │           ├──────► Killed      (halted by the user)
      │           └──────► Error       (a fault of the platform: lost process, backend failure)
      ├──────────────────► Killed      (halted while waiting)
      └──────────────────► Error
"""
from __future__ import annotations

QUEUED = "Queued"
RUNNING = "Running"
COMPLETED = "Completed"
FAILED = "Failed"
KILLED = "Killed"
ERROR = "Error"

ACTIVE = (QUEUED, RUNNING)
FINISHED = (COMPLETED, FAILED, KILLED, ERROR)

_ALLOWED = {
    QUEUED: {RUNNING, KILLED, ERROR},
    RUNNING: {COMPLETED, FAILED, KILLED, ERROR},
}

# KAMONOHASHI's statusType groups
STATUS_TYPE = {QUEUED: "Pending", RUNNING: "Running", COMPLETED: "Closed", FAILED: "Failed",
               KILLED: "Failed", ERROR: "Error"}


class TransitionError(ValueError):
    pass


def can_move(current: str, new: str) -> bool:
    return new in _ALLOWED.get(current, set())


def check_move(current: str, new: str) -> None:
    if not can_move(current, new):
        raise TransitionError(f"a job that is {current} cannot become {new}")
