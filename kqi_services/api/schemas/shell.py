"""The web shell: the WebSocket routes and the tenant's record of shells (/tenant/shell-sessions)."""
from __future__ import annotations

from .core import ApiModel, Id, declare

#: GET /training/{id}/shell and the others: a WebSocket upgrade (101), 409 when the job is not running
SHELL_CONTRACTS = {"GET": declare(response=None, status=101, errors=(409,))}


class ShellSessionQuery(ApiModel):
    jobId: Id | None = None
    """Only the shells into this job."""
    kind: str | None = None
    """Only the shells into jobs of this kind (training, inference, preprocessing)."""


class ShellSessionOutput(ApiModel):
    id: Id
    jobId: Id
    jobKind: str
    jobName: str | None
    userName: str
    ipAddress: str | None
    openedAt: str
    closedAt: str | None
    closeReason: str | None
