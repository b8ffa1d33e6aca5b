"""Admission of queued jobs: tenant quotas, backend capacity, FIFO within a tenant, fair
across tenants. Pure functions over plain records, so they are fast and testable.

Fairness: at each step the tenant that uses the least (as a share of the capacity) and
whose oldest waiting job fits goes next; a tenant's jobs start in submission order, and a
job that does not fit blocks the later jobs of its own tenant only (no overtaking inside
a tenant, so a big job is not starved by small ones of the same tenant).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from operator import attrgetter


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


def _quota_reason(use: list, req: Request, quota: Quota | None) -> str | None:
    if quota is None:
        return None
    for i, (res, limit) in enumerate((("cpu", quota.cpu), ("memory", quota.memory), ("gpu", quota.gpu))):
        need = (req.cpu, req.memory, req.gpu)[i]
        if limit and use[i] + need > limit + 1e-9:
            return f"tenant quota: {res} {use[i]:g} in use of {limit:g}, this job needs {need:g}"
    return None


def _capacity_reason(free: list, req: Request) -> str | None:
    for i, res in enumerate(("cpu", "memory", "gpu")):
        need = (req.cpu, req.memory, req.gpu)[i]
        if need > free[i] + 1e-9:
            return f"cluster capacity: {free[i]:g} {res} free, this job needs {need:g}"
    return None


_ORDER = attrgetter("order")


def admit(queued: list[Request], running: list[Request], quotas: dict[str, Quota], capacity: Capacity) -> Decision:
    # a tenant's use: [cpu, memory, gpu]; the backend's free room likewise
    use: dict[str, list] = {}
    free = [capacity.cpu, capacity.memory, capacity.gpu]
    for r in running:
        u = use.get(r.tenant)
        if u is None:
            u = use[r.tenant] = [0.0, 0.0, 0]
        u[0] += r.cpu
        u[1] += r.memory
        u[2] += r.gpu
        free[0] -= r.cpu
        free[1] -= r.memory
        free[2] -= r.gpu

    queues: dict[str, list] = {}
    for r in sorted(queued, key=_ORDER):
        q = queues.get(r.tenant)
        if q is None:
            q = queues[r.tenant] = []
        q.append(r)

    cap_cpu, cap_memory = capacity.cpu, capacity.memory

    def share(u):
        return max(u[0] / cap_cpu if cap_cpu else 0, u[1] / cap_memory if cap_memory else 0)

    # the next tenant to go: the least share of the capacity in use, then the oldest head job.
    # Admitting a job changes its own tenant's share only, so a heap of (share, head order)
    # stays right for the others.
    heads = dict.fromkeys(queues, 0)
    heap = []
    for tenant, q in queues.items():
        u = use.get(tenant)
        if u is None:
            u = use[tenant] = [0.0, 0.0, 0]
        heap.append((share(u), q[0].order, tenant))
    heapq.heapify(heap)

    decision = Decision()
    blocked: dict[str, str] = {}
    while heap:
        _, _, tenant = heapq.heappop(heap)
        q, i, u = queues[tenant], heads[tenant], use[tenant]
        req = q[i]
        reason = _quota_reason(u, req, quotas.get(tenant)) or _capacity_reason(free, req)
        if reason:
            blocked[tenant] = reason  # its later jobs wait behind it: no overtaking inside a tenant
            continue
        decision.start.append(req.job_id)
        u[0] += req.cpu
        u[1] += req.memory
        u[2] += req.gpu
        free[0] -= req.cpu
        free[1] -= req.memory
        free[2] -= req.gpu
        heads[tenant] = i + 1
        if i + 1 < len(q):
            heapq.heappush(heap, (share(u), q[i + 1].order, tenant))

    waiting = decision.waiting
    for tenant, q in queues.items():
        first = heads[tenant]
        if first == len(q):
            continue
        reason = blocked[tenant]
        waiting[q[first].job_id] = (1, reason)
        behind = f"behind earlier jobs of the tenant; the first one waits for {reason}"  # one string a tenant
        for position in range(2, len(q) - first + 1):
            waiting[q[first + position - 1].job_id] = (position, behind)
    return decision
