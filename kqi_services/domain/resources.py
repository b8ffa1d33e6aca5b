"""The resource view (KAMONOHASHI's ResourceController) and "what can I use now".

Containers are everything that holds cpu/memory/gpu: running jobs (training, inference,
preprocessing), notebook servers and TensorBoards, read from the kqi database (the engine,
the notebook manager and the TensorBoards keep it current, the backends' own view — which
node a pod landed on — included). Nodes are the administrator's recorded nodes plus the
local backend's own machine; what each holds is the sum of its containers.

`available` answers what a user can start now: the tenant quota, what runs against it, what
is free on each node the tenant may use, and for a request (cpu, memory, gpu, partition)
whether it would start now and, if not, what holds it back and what would let it run. The
rules are the scheduler's (quota per tenant, the backend's capacity) and node_fit_errors.
"""
from __future__ import annotations

import asyncio
import os
import re
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import Node, Tenant
from ..db.models_jobs import Job
from ..db.models_notebooks import Notebook
from ..jobs.scheduler import NodeRoom, node_fit_errors, node_wait_note
from . import job_status as st
from .infra import tenant_nodes
from .validation import NotFoundError

CONTAINER_TYPES = {"training": "Training", "tensorboard": "TensorBoard", "preprocessing": "Preprocessing",
                   "inference": "Inferencing", "notebook": "Notebook"}
NOTEBOOK_ACTIVE = ("Running", "Pending")


def _iso(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc).replace(tzinfo=None).isoformat()
    return value.isoformat()


def _num(value) -> float:
    return float(value or 0)


def local_node_name() -> str:
    return os.uname().nodename


# ------------------------------------------------------------------------------ containers
def containers(db: Session, app, tenant: Tenant | None = None) -> list[dict]:
    """Every container that holds resources (of one tenant, or of all)."""
    tenants = {t.id: t for t in db.scalars(select(Tenant)).all()}
    rows: list[dict] = []

    def add(*, kind, ref_id, name, tenant_id, owner, cpu, memory, gpu, status, status_type, node, started, note,
            page):
        t = tenants.get(tenant_id)
        rows.append({"name": name, "containerType": CONTAINER_TYPES[kind], "kind": kind, "id": ref_id,
                     "tenantId": tenant_id, "tenantName": t.name if t else None,
                     "displayName": t.display_name if t else None, "createdBy": owner,
                     "displayNameCreatedBy": owner, "cpu": _num(cpu), "memory": _num(memory), "gpu": int(gpu or 0),
                     "status": status, "statusType": status_type, "conditionNote": note, "nodeName": node,
                     "startedAt": _iso(started), "page": page})

    jobs = select(Job).where(Job.status == st.RUNNING)
    if tenant is not None:
        jobs = jobs.where(Job.tenant_id == tenant.id)
    for job in db.scalars(jobs.order_by(Job.id)).all():
        add(kind=job.kind, ref_id=job.display_id, name=job.key, tenant_id=job.tenant_id, owner=job.created_by,
            cpu=job.cpu, memory=job.memory, gpu=job.gpu, status=job.status, status_type="Running", node=job.node,
            started=job.started_at, note=job.status_reason,
            page=f"{job.kind}/{job.display_id}" if job.kind != "preprocessing" else "preprocessing")
    notebooks = select(Notebook).where(Notebook.status.in_(NOTEBOOK_ACTIVE))
    if tenant is not None:
        notebooks = notebooks.where(Notebook.tenant_id == tenant.id)
    listed = db.scalars(notebooks.order_by(Notebook.id)).all()
    node_of = notebook_nodes(app) if listed else {}
    for nb in listed:
        request = nb.request or {}
        node = node_of.get((nb.created_by, nb.server_name)) if node_of is not None else local_node_name()
        add(kind="notebook", ref_id=nb.id, name=f"notebook-{nb.id}", tenant_id=nb.tenant_id, owner=nb.created_by,
            cpu=request.get("cpu"), memory=request.get("memory"), gpu=request.get("gpu"), status=nb.status,
            status_type=nb.status, node=node, started=nb.started_at, note=nb.status_reason,
            page=f"notebook/{nb.id}")
    boards = getattr(app, "tensorboards", None)
    if boards is not None:
        for job in boards.all_jobs(db):
            if tenant is not None and job.tenant_id != tenant.id:
                continue
            state = boards.state(job) or {}
            add(kind="tensorboard", ref_id=job.display_id, name=state.get("key") or f"tensorboard-{job.id}",
                tenant_id=job.tenant_id, owner=state.get("startedBy") or job.created_by, cpu=boards.cpu,
                memory=boards.memory_gib, gpu=0, status="Running", status_type="Running",
                node=local_node_name() if backend_is_local(app) else None, started=state.get("startedAt"),
                note=None, page=f"training/{job.display_id}")
    return rows


def backend_is_local(app) -> bool:
    return getattr(app.jobs.backend, "name", "") != "kubernetes"


def notebook_node(app, user: str | None = None, server: str | None = None) -> str | None:
    """The node of one notebook server: this machine with the local spawner; its pod's node on
    Kubernetes (None while it is not scheduled, or when no user is named)."""
    nodes = notebook_nodes(app) if user is not None or getattr(app, "profile", "local") != "kubernetes" else {}
    return local_node_name() if nodes is None else nodes.get((user, server or ""))


def notebook_nodes(app) -> dict | None:
    """Where notebooks run: None with the local spawner (this machine), else {(user, server name):
    node} of the KubeSpawner pods as the Kubernetes job backend reads them ({} when it cannot)."""
    if getattr(app, "profile", "local") != "kubernetes":
        return None
    read = getattr(app.jobs.backend, "notebook_nodes", None)
    if read is None:
        return {}
    try:
        return read()
    except Exception as e:
        app.log.warning("Could not read the notebook pods' nodes: %s", e)
        return {}


def find_container(db: Session, app, name: str, tenant: Tenant | None = None, tenant_id: int | None = None) -> dict:
    for c in containers(db, app, tenant):
        if c["name"] == name and (tenant_id is None or c["tenantId"] == tenant_id):
            return c
    raise NotFoundError(f"No running container is named {name}" + (" in this tenant." if tenant or tenant_id
                                                                      is not None else "."))


def container_job(db: Session, container: dict) -> Job | None:
    """The job (or, for a TensorBoard, the training) behind a container of the list."""
    kind = "training" if container["kind"] == "tensorboard" else container["kind"]
    return db.scalar(select(Job).where(Job.tenant_id == container["tenantId"], Job.kind == kind,
                                       Job.display_id == container["id"]))


def container_events(db: Session, app, container: dict) -> list[dict]:
    """What happened to a container, oldest first: queued, started (where), the backend's notes."""
    events = []
    if container["kind"] in ("training", "inference", "preprocessing"):
        job = container_job(db, container)
        events.append({"timestamp": _iso(job.queued_at), "type": "Normal", "reason": "Queued",
                       "message": f"{job.key} was submitted by {job.created_by}"})
        if job.started_at:
            events.append({"timestamp": _iso(job.started_at), "type": "Normal", "reason": "Started",
                           "message": f"started on {job.node or 'a node'} ({job.cpu:g} cpu, {job.memory:g} GiB,"
                                      f" {job.gpu} gpu)"})
        backend = app.jobs.backend
        more = getattr(backend, "events", None)
        for e in (more(job.key) if more else []):
            events.append(e)
        if job.status_reason:
            events.append({"timestamp": None, "type": "Warning" if job.status != st.RUNNING else "Normal",
                           "reason": "Note", "message": job.status_reason})
    elif container["kind"] == "notebook":
        nb = db.get(Notebook, container["id"])
        events.append({"timestamp": _iso(nb.started_at), "type": "Normal", "reason": "Started",
                       "message": f"the notebook server {nb.server_name} of {nb.created_by} was started"})
        if nb.expires_at:
            events.append({"timestamp": _iso(nb.expires_at), "type": "Normal", "reason": "Expires",
                           "message": "its lifetime ends then"})
    else:
        events.append({"timestamp": container["startedAt"], "type": "Normal", "reason": "Started",
                       "message": f"TensorBoard of training {container['id']} started by {container['createdBy']}"})
    return events


# ------------------------------------------------------------------------------ nodes
def node_list(db: Session, app, conts: list[dict], tenant: Tenant | None = None) -> list[dict]:
    """KAMONOHASHI's NodeResourceOutputModel for each node (the tenant's, or all), with what it holds."""
    rows = tenant_nodes(db, tenant) if tenant is not None else list(
        db.scalars(select(Node).order_by(Node.name)).all())
    out = []
    local = backend_is_local(app)
    backend = app.jobs.backend
    cluster = cluster_sizes(backend)
    for n in rows:
        size = node_size(n, cluster, backend)
        out.append(_node_json(n.name, n.memo, n.partition, n.access_level, n.tensorboard_enabled, *size))
    if tenant is None:  # nodes of the cluster nobody recorded (system administrators see them all)
        known = {n["name"] for n in out}
        for name, size in sorted(cluster.items()):
            if name not in known:
                out.append(_node_json(name, None, None, 2, True, *size))
    if local and tenant is None and local_node_name() not in {n["name"] for n in out}:
        out.append(_node_json(local_node_name(), "this machine (the local job backend)", None, 2, True,
                              backend.capacity_cpu, backend.capacity_memory_gib, backend.capacity_gpu))
    by_name = {n["name"]: n for n in out}
    for c in conts:
        n = by_name.get(c["nodeName"] or "")
        if n is None:
            continue
        n["assignedCpu"] = round(n["assignedCpu"] + c["cpu"], 3)
        n["assignedMemory"] = round(n["assignedMemory"] + c["memory"], 3)
        n["assignedGpu"] += c["gpu"]
        n["containerResourceList"].append(c)
    for n in out:
        for res in ("Cpu", "Memory", "Gpu"):
            cap = n[f"allocatable{res}"]
            n[f"free{res}"] = None if cap is None else round(cap - n[f"assigned{res}"], 3)
        n["cpuInfo"] = _info(n["assignedCpu"], n["allocatableCpu"])
        n["memoryInfo"] = _info(n["assignedMemory"], n["allocatableMemory"])
        n["gpuInfo"] = _info(n["assignedGpu"], n["allocatableGpu"])
    return out


def cluster_sizes(backend) -> dict:
    """The cluster's own view of its nodes (Kubernetes: allocatable per node), {} when it has none."""
    sizes_of = getattr(backend, "node_sizes", None)
    if sizes_of is None:
        return {}
    try:
        return sizes_of()
    except Exception:
        return {}


def node_size(node: Node, cluster: dict, backend) -> tuple:
    """(cpu, memory GiB, gpu) of a recorded node: the cluster's view, else what was recorded; the
    local backend's own machine holds what that backend hands out."""
    if getattr(backend, "name", "") != "kubernetes" and node.name == local_node_name():
        return backend.capacity_cpu, backend.capacity_memory_gib, backend.capacity_gpu
    return cluster.get(node.name) or (node.cpu, node.memory, node.gpu)


def node_rooms(db: Session, backend, tenant: Tenant, running: list) -> list[NodeRoom]:
    """The nodes the tenant may use, each with its size and what running jobs hold on it
    (`running`: rows with node, cpu, memory, gpu), as the scheduler's node_wait_note reads them."""
    held: dict[str, list] = {}
    for r in running:
        if r.node:
            h = held.setdefault(r.node, [0.0, 0.0, 0])
            h[0] += r.cpu or 0
            h[1] += r.memory or 0
            h[2] += r.gpu or 0
    cluster = cluster_sizes(backend)
    rooms = []
    for n in tenant_nodes(db, tenant):
        cpu, memory, gpu = node_size(n, cluster, backend)
        rooms.append(NodeRoom(n.name, n.partition, float(cpu) if cpu else None, float(memory) if memory else None,
                              int(gpu) if gpu is not None else None, *held.get(n.name, (0.0, 0.0, 0))))
    return rooms


def _node_json(name, memo, partition, access_level, tensorboard, cpu, memory, gpu) -> dict:
    return {"name": name, "memo": memo, "partition": partition, "accessLevel": access_level,
            "tensorBoardEnabled": bool(tensorboard), "allocatableCpu": float(cpu) if cpu else None,
            "allocatableMemory": float(memory) if memory else None,
            "allocatableGpu": int(gpu) if gpu is not None else None,
            "assignedCpu": 0.0, "assignedMemory": 0.0, "assignedGpu": 0, "containerResourceList": []}


def _info(assigned, allocatable) -> str:
    return f"{assigned:g} / {allocatable:g}" if allocatable is not None else f"{assigned:g} / -"


def tenant_list(db: Session, conts: list[dict]) -> list[dict]:
    """KAMONOHASHI's TenantResourceOutputModel: each tenant's quota (allocatable) and what it holds."""
    out = []
    for t in db.scalars(select(Tenant).order_by(Tenant.id)).all():
        mine = [c for c in conts if c["tenantId"] == t.id]
        row = {"id": t.id, "name": t.name, "displayName": t.display_name,
               "allocatableCpu": float(t.limit_cpu or 0), "allocatableMemory": float(t.limit_memory or 0),
               "allocatableGpu": int(t.limit_gpu or 0),
               "assignedCpu": round(sum(c["cpu"] for c in mine), 3),
               "assignedMemory": round(sum(c["memory"] for c in mine), 3),
               "assignedGpu": sum(c["gpu"] for c in mine), "containerResourceList": mine}
        row["cpuInfo"] = _info(row["assignedCpu"], row["allocatableCpu"] or None)
        row["memoryInfo"] = _info(row["assignedMemory"], row["allocatableMemory"] or None)
        row["gpuInfo"] = _info(row["assignedGpu"], row["allocatableGpu"] or None)
        out.append(row)
    return out


# ------------------------------------------------------------------------------ what can I use
def _triple(cpu, memory, gpu) -> dict:
    return {"cpu": round(float(cpu or 0), 3), "memory": round(float(memory or 0), 3), "gpu": int(gpu or 0)}


def running_jobs_use(db: Session, tenant_id: int | None = None, user: str | None = None) -> dict:
    """What running jobs hold (the scheduler counts these against the quota and the capacity)."""
    query = select(Job.cpu, Job.memory, Job.gpu).where(Job.status == st.RUNNING)
    if tenant_id is not None:
        query = query.where(Job.tenant_id == tenant_id)
    if user is not None:
        query = query.where(Job.created_by == user)
    rows = db.execute(query).all()
    return _triple(sum(r.cpu for r in rows), sum(r.memory for r in rows), sum(r.gpu for r in rows))


def wait_advice(reason: str | None, need: dict, quota_free: dict, capacity_free: dict) -> str | None:
    """What would let a waiting job run, from the reason the scheduler gave and the numbers now."""
    if not reason:
        return None
    if reason.startswith("behind earlier jobs"):
        return "It starts after the earlier queued jobs of this tenant have started; halting them lets it go sooner."
    if reason.startswith("tenant quota"):
        short = [f"{res} {need[res] - quota_free[res]:g}" for res in ("cpu", "memory", "gpu")
                 if quota_free[res] is not None and need[res] > quota_free[res] + 1e-9]
        return (f"It starts when the tenant's running jobs free {', '.join(short)} (or halt one of them); or ask"
                " for a smaller job within the free quota, or ask an administrator to raise the tenant quota.")
    if reason.startswith("cluster capacity"):
        short = [f"{res} {need[res] - capacity_free[res]:g}" for res in ("cpu", "memory", "gpu")
                 if need[res] > capacity_free[res] + 1e-9]
        nodes = re.findall(r"(?:^|; )node ([^\s:]+)", reason)
        where = ("on node " + " or ".join(nodes)) if nodes else "on the nodes"
        return (f"It starts when running jobs (of any tenant) free {', '.join(short)} {where}; or ask for"
                " a smaller job.")
    return None


def available(db: Session, app, tenant: Tenant, user: str, request: dict | None = None) -> dict:
    """What the user can start now in the tenant (and, for `request`, whether it would start)."""
    backend = app.jobs.backend
    tenant_use = running_jobs_use(db, tenant.id)
    all_use = running_jobs_use(db)
    quota = _triple(tenant.limit_cpu, tenant.limit_memory, tenant.limit_gpu)
    quota_free = {res: (round(quota[res] - tenant_use[res], 3) if quota[res] else None) for res in quota}
    capacity = _triple(backend.capacity_cpu, backend.capacity_memory_gib, backend.capacity_gpu)
    capacity_free = {res: round(capacity[res] - all_use[res], 3) for res in capacity}
    queued = db.execute(select(Job.cpu, Job.memory, Job.gpu).where(Job.status == st.QUEUED,
                                                                   Job.tenant_id == tenant.id)).all()
    conts = containers(db, app)
    nodes = node_list(db, app, conts, tenant)
    partitions: dict[str, list] = {}
    for n in nodes:
        partitions.setdefault(n["partition"] or "", []).append(
            {"name": n["name"], "allocatableCpu": n["allocatableCpu"], "allocatableMemory": n["allocatableMemory"],
             "allocatableGpu": n["allocatableGpu"], "freeCpu": n["freeCpu"], "freeMemory": n["freeMemory"],
             "freeGpu": n["freeGpu"]})

    def limit(res):
        values = [capacity_free[res]] + ([quota_free[res]] if quota_free[res] is not None else [])
        return max(0, min(values))

    out = {
        "tenantId": tenant.id, "tenantName": tenant.name, "userName": user,
        "quota": quota, "used": tenant_use, "free": quota_free,
        "usedByMe": running_jobs_use(db, tenant.id, user),
        "queued": {"count": len(queued), **_triple(sum(q.cpu for q in queued), sum(q.memory for q in queued),
                                                   sum(q.gpu for q in queued))},
        "capacity": capacity, "capacityFree": capacity_free,
        "startsNowAtMost": {res: round(limit(res), 3) if res != "gpu" else int(limit(res))
                            for res in ("cpu", "memory", "gpu")},
        "partitions": [{"partition": p or None, "nodes": ns} for p, ns in sorted(partitions.items())],
        "containers": [c for c in conts if c["tenantId"] == tenant.id],
        "check": None,
    }
    if request is not None:
        def rooms():
            running = db.execute(select(Job.node, Job.cpu, Job.memory, Job.gpu).where(Job.status == st.RUNNING)).all()
            return node_rooms(db, backend, tenant, running)

        out["check"] = check_request(db, tenant, request, quota, quota_free, capacity_free,
                                     queued_ahead=len(queued), rooms=rooms)
    return out


def check_request(db: Session, tenant: Tenant, request: dict, quota: dict, quota_free: dict,
                  capacity_free: dict, queued_ahead: int = 0, rooms=None) -> dict:
    """Would a job of `request` {cpu, memory, gpu, partition} start now, wait, or never run?
    `rooms()`, when given, lists the nodes (NodeRoom) whose free room a capacity wait names."""
    need = _triple(request.get("cpu"), request.get("memory"), request.get("gpu"))
    never = node_fit_errors(need["cpu"], need["memory"], need["gpu"], tenant_nodes(db, tenant),
                            request.get("partition") or None)
    over_quota = [f"{res} {need[res]:g} is over the tenant quota of {quota[res]:g}" for res in need
                  if quota[res] and need[res] > quota[res] + 1e-9]
    reasons, outcome = [], "startsNow"
    if never or over_quota:
        outcome = "never"
        reasons = over_quota + list(never.values())
    else:
        for res in need:
            if quota_free[res] is not None and need[res] > quota_free[res] + 1e-9:
                reasons.append(f"tenant quota: {res} {quota[res] - quota_free[res]:g} in use of {quota[res]:g},"
                               f" this job needs {need[res]:g}")
        if not reasons:
            for res in need:
                if need[res] > capacity_free[res] + 1e-9:
                    reasons.append(f"cluster capacity: {capacity_free[res]:g} {res} free, this job needs"
                                   f" {need[res]:g}")
            note = node_wait_note(need["cpu"], need["memory"], need["gpu"], rooms(),
                                  request.get("partition") or None) if reasons and rooms is not None else None
            if note:
                reasons.append(note)
        if reasons:
            outcome = "waits"
        elif queued_ahead:
            outcome, reasons = "waits", [f"behind {queued_ahead} queued job(s) of this tenant"]
    advice = None
    if outcome == "waits":
        advice = wait_advice("; ".join(reasons) if not reasons[0].startswith("behind") else "behind earlier jobs",
                             need, quota_free, capacity_free)
    elif outcome == "never":
        advice = "Ask for less (within the quota and the largest node), or ask an administrator for more."
    return {"request": {**need, "partition": request.get("partition") or None}, "outcome": outcome,
            "reasons": reasons, "advice": advice}


def wait_advices(waiting: dict, queued: list, running: list, tenants: dict, capacity) -> dict[int, str]:
    """What would let each waiting job run (the engine's queue view): `waiting` is the scheduler's
    {job id: (position, reason)}, `queued`/`running` rows with id, tenant_id, cpu, memory, gpu."""
    use: dict[int, list] = {}
    free = [capacity.cpu, capacity.memory, capacity.gpu]
    for r in running:
        u = use.setdefault(r.tenant_id, [0.0, 0.0, 0])
        for i, v in enumerate((r.cpu, r.memory, r.gpu)):
            u[i] += v or 0
            free[i] -= v or 0
    capacity_free = dict(zip(("cpu", "memory", "gpu"), free))
    by_id = {q.id: q for q in queued}
    out = {}
    for job_id, (_position, reason) in waiting.items():
        q = by_id.get(job_id)
        tenant = tenants.get(q.tenant_id) if q is not None else None
        if tenant is None:
            continue
        u = use.get(q.tenant_id, [0.0, 0.0, 0])
        quota = _triple(tenant.limit_cpu, tenant.limit_memory, tenant.limit_gpu)
        quota_free = {res: (quota[res] - u[i] if quota[res] else None)
                      for i, res in enumerate(("cpu", "memory", "gpu"))}
        advice = wait_advice(reason, _triple(q.cpu, q.memory, q.gpu), quota_free, capacity_free)
        if advice:
            out[job_id] = advice
    return out


async def refresh_notebooks(app) -> None:
    """Bring the notebooks recorded as running up to date with the hub (one request per owner), so
    that the usage ledger sees their servers' starts and ends while nobody opens their pages."""
    from .notebooks import NotebookManager

    with app.session_factory() as db:
        active = db.scalars(select(Notebook).where(Notebook.status.in_(NOTEBOOK_ACTIVE))).all()
        models: dict = {}
        for nb in active:
            if nb.created_by not in models:
                models[nb.created_by] = await app.hub.get_user(nb.created_by)
            server = ((models[nb.created_by] or {}).get("servers") or {}).get(nb.server_name)
            db.refresh(nb)  # a halt may have ended it while the hub answered: its Killed stands
            if nb.status not in NOTEBOOK_ACTIVE:
                continue
            tenant = db.get(Tenant, nb.tenant_id)
            if tenant is not None:
                await NotebookManager(db, tenant, nb.created_by, app).refresh(nb, server, fetched=True)
        if active and getattr(app, "profile", "local") == "kubernetes":  # the node each pod landed on
            from . import usage

            node_of = await asyncio.get_running_loop().run_in_executor(app.io_executor, notebook_nodes, app)
            for nb in active:
                node = node_of.get((nb.created_by, nb.server_name))
                if node:
                    usage.set_node(db, "notebook", nb.id, node)
            db.commit()


def sample(app) -> int:
    """Take one resource history sample (blocking)."""
    from . import usage

    with app.session_factory() as db:
        conts = containers(db, app)
        return usage.take_sample(db, node_list(db, app, conts), conts)
