"""Admission of queued jobs: tenant quotas, backend capacity, FIFO within a tenant, fair
across tenants. Pure functions over plain records, so they are fast and testable.

Fairness: at each step the tenant that uses the least (as a share of the capacity) and
whose oldest waiting job fits goes next; a tenant's jobs start in submission order, and a
job that does not fit blocks the later jobs of its own tenant only (no overtaking inside
a tenant, so a big job is not starved by small ones of the same tenant).
"""
from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    job_id: int
    tenant: str
    cpu: float
    memory: float
    gpu: int
    order: tuple  # (queued_at, id): submission order


@dataclass
class Quota:
    cpu: float | None = None
    memory: float | None = None
    gpu: int | None = None


@dataclass
class Capacity:
    cpu: float
    memory: float
    gpu: int


@dataclass
class Decision:
    start: list[int] = field(default_factory=list)
    # job id -> (position in its tenant's queue, 1-based; why it waits)
    waiting: dict[int, tuple[int, str]] = field(default_factory=dict)


def _fits_quota(use: dict, req: Request, quota: Quota | None) -> str | None:
    if quota is None:
        return None
    for res, limit in (("cpu", quota.cpu), ("memory", quota.memory), ("gpu", quota.gpu)):
        if limit and use[res] + getattr(req, res) > limit + 1e-9:
            return f"tenant quota: {res} {use[res]:g} in use of {limit:g}, this job needs {getattr(req, res):g}"
    return None


def _fits_capacity(free: dict, req: Request) -> str | None:
    for res in ("cpu", "memory", "gpu"):
        if getattr(req, res) > free[res] + 1e-9:
            return f"cluster capacity: {free[res]:g} {res} free, this job needs {getattr(req, res):g}"
    return None


def admit(queued: list[Request], running: list[Request], quotas: dict[str, Quota], capacity: Capacity) -> Decision:
    use = defaultdict(lambda: {"cpu": 0.0, "memory": 0.0, "gpu": 0})
    free = {"cpu": capacity.cpu, "memory": capacity.memory, "gpu": capacity.gpu}
    for r in running:
        for res in ("cpu", "memory", "gpu"):
            use[r.tenant][res] += getattr(r, res)
            free[res] -= getattr(r, res)

    queues: dict[str, deque] = defaultdict(deque)
    for r in sorted(queued, key=lambda r: r.order):
        queues[r.tenant].append(r)

    decision = Decision()
    blocked: dict[str, str] = {}

    def share(tenant):
        u = use[tenant]
        return max(u["cpu"] / capacity.cpu if capacity.cpu else 0,
                   u["memory"] / capacity.memory if capacity.memory else 0)

    while True:
        candidates = [t for t, q in queues.items() if q and t not in blocked]
        if not candidates:
            break
        tenant = min(candidates, key=lambda t: (share(t), queues[t][0].order))
        req = queues[tenant][0]
        reason = _fits_quota(use[tenant], req, quotas.get(tenant)) or _fits_capacity(free, req)
        if reason:
            blocked[tenant] = reason
            continue
        queues[tenant].popleft()
        decision.start.append(req.job_id)
        for res in ("cpu", "memory", "gpu"):
            use[tenant][res] += getattr(req, res)
            free[res] -= getattr(req, res)

    for tenant, q in queues.items():
        for position, req in enumerate(q, start=1):
            reason = blocked.get(tenant, "waiting for earlier jobs")
            if position > 1:
                reason = f"behind {position - 1} earlier job(s) of the tenant; first one waits for {reason}"
            decision.waiting[req.job_id] = (position, reason)
    return decision
