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


def ended_message(what: str, status: str) -> str:
    """The one answer (409) to halting or completing anything that has ended already: a training,
    an inference, a preprocessing history or a notebook (`what`, e.g. "training 3"). As in
    KAMONOHASHI only a job that still runs (or an Opened offline history) can be ended; it answers
    400 ("Training ... does not exist", "... is not opened"), here 409: a conflict with the job's
    state, which the message names."""
    return f"The {what} has ended already ({status}): only a waiting or running one can be halted or completed."
