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
    partition: str | None = None  # the partition it asked for (None: any node the tenant may use)


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


# ------------------------------------------------------------------------------ node capacity
@dataclass(frozen=True)
class NodeSize:
    """A node's capacity as the administrator recorded it (None: not known, no limit)."""
    name: str
    cpu: float | None = None
    memory: float | None = None  # GiB
    gpu: int | None = None
    partition: str | None = None

    @classmethod
    def of(cls, node) -> "NodeSize":
        """From a Node row (or anything with those attributes); a cpu or memory of 0 is not recorded."""
        return cls(node.name, node.cpu or None, node.memory or None, node.gpu, node.partition)


def _shown(value, unit: str = "") -> str:
    if value is None:
        return "unknown"
    text = f"{value:.1f}".rstrip("0").rstrip(".") if isinstance(value, float) else str(value)
    return text + unit


def node_fit_errors(cpu: float, memory: float, gpu: int, nodes: list, partition: str | None = None
                    ) -> dict[str, str]:
    """Whether a request (cpu, memory GiB, gpu) could ever run on one node: {} when a node of the
    partition (of every node given when no partition is named) holds all three, else what does
    not fit, resource by resource, with the numbers of the node that comes closest (the most
    resources that fit, then the most cpu, memory and gpu): "cpu 64 > 2 on the largest node of
    partition local (node1: cpu 2, memory 7.6 GiB, gpu 0)".

    `nodes` are the nodes the tenant may use (NodeSize or Node rows). A capacity that is not
    recorded does not limit; with no node to look at there is nothing to refuse here (the job
    backend's own capacity decides). Whether it fits *now* is admit()'s business: a request
    that fits a node waits until there is room."""
    sizes = [n if isinstance(n, NodeSize) else NodeSize.of(n) for n in nodes]
    if partition:
        sizes = [n for n in sizes if n.partition == partition]
    if not sizes:
        return {}
    need = {"cpu": cpu or 0, "memory": memory or 0, "gpu": gpu or 0}

    def over(node: NodeSize) -> list[str]:
        return [res for res in ("cpu", "memory", "gpu")
                if getattr(node, res) is not None and need[res] > getattr(node, res) + 1e-9]

    def size(node: NodeSize):
        return (-len(over(node)), node.cpu if node.cpu is not None else float("inf"),
                node.memory if node.memory is not None else float("inf"),
                node.gpu if node.gpu is not None else float("inf"), node.name)

    best = max(sizes, key=size)
    if not over(best):
        return {}
    where = f"of partition {partition}" if partition else "this tenant may use"
    described = (f"{best.name}: cpu {_shown(best.cpu)}, memory {_shown(best.memory, ' GiB')},"
                 f" gpu {_shown(best.gpu)}")
    unit = {"cpu": "", "memory": " GiB", "gpu": ""}
    return {res: f"{res} {_shown(need[res] if res != 'gpu' else int(need[res]), unit[res])} > "
                 f"{_shown(getattr(best, res), unit[res])} on the largest node {where} ({described}):"
                 " no node can ever hold it" for res in over(best)}


@dataclass(frozen=True)
class NodeRoom:
    """A node's size (None: not recorded, no limit) and what running jobs hold on it now."""
    name: str
    partition: str | None
    cpu: float | None
    memory: float | None  # GiB
    gpu: int | None
    used_cpu: float = 0.0
    used_memory: float = 0.0
    used_gpu: int = 0


_UNIT = {"cpu": "", "memory": " GiB", "gpu": ""}


def node_shortfalls(cpu: float, memory: float, gpu: int, rooms: list, partition: str | None = None,
                    most: int = 2) -> list[tuple[NodeRoom, list[tuple[str, float, float, float]]]]:
    """The nodes of the partition (every node given when none is named) that come closest to
    holding a request now, with what each lacks: [(node, [(resource, free, size, need), ...])],
    at most `most` of them, the fewest lacking resources first, then the smallest shortfall
    (as a share of the need), then by name. [] when a node has room for all of it now, or there
    is no node to look at."""
    need = {"cpu": cpu or 0, "memory": memory or 0, "gpu": gpu or 0}
    nodes = [r for r in rooms if r.partition == partition] if partition else list(rooms)
    found = []
    for r in nodes:
        lacks = []
        for res in ("cpu", "memory", "gpu"):
            size = getattr(r, res)
            if size is None:
                continue
            free = max(0.0, size - getattr(r, f"used_{res}"))
            if need[res] > free + 1e-9:
                lacks.append((res, free, size, need[res]))
        if not lacks:
            return []
        found.append((r, lacks))
    found.sort(key=lambda f: (len(f[1]), sum((n - fr) / n for _res, fr, _s, n in f[1]), f[0].name))
    return found[:most]


def _amount(res: str, value) -> str:
    number = str(int(value)) if res == "gpu" else f"{round(float(value), 2):g}"
    return number + _UNIT[res]


def node_wait_note(cpu: float, memory: float, gpu: int, rooms: list, partition: str | None = None,
                   most: int = 2) -> str | None:
    """The nodes that hold a capacity wait back, in words: "node node1 (partition local): cpu 1
    free of 2, this job needs 2" (node_shortfalls; a node's resources joined by " and ", nodes by "; ")."""
    parts = []
    for room, lacks in node_shortfalls(cpu, memory, gpu, rooms, partition, most):
        where = f"node {room.name}" + (f" (partition {room.partition})" if room.partition else "")
        parts.append(where + ": " + " and ".join(
            f"{res} {_amount(res, free)} free of {_amount(res, size)}, this job needs {_amount(res, need)}"
            for res, free, size, need in lacks))
    return "; ".join(parts) or None


def admit(queued: list[Request], running: list[Request], quotas: dict[str, Quota], capacity: Capacity,
          node_note=None) -> Decision:
    """`node_note(request) -> str | None`, when given, names the nodes that hold a capacity wait
    back (node_wait_note over the nodes the request's tenant may use); it is appended to the
    "cluster capacity: ..." reason."""
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
        reason = _quota_reason(u, req, quotas.get(tenant))
        if not reason:
            reason = _capacity_reason(free, req)
            note = node_note(req) if reason and node_note is not None else None
            if note:
                reason = f"{reason}; {note}"
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
