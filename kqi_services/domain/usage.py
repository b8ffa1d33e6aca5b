"""The usage ledger: who held which resources for how long, and what each tenant stores.

A run (a job, a notebook server, a TensorBoard) is opened when it really starts and closed
when it ends; the engine, the notebook manager and the TensorBoards call `open_run` and
`close_run` where their state changes, and both are idempotent (a run is opened once, a
closed run stays closed), so reconciling after a restart records nothing twice. A run that
is still open counts up to now.

cpu-seconds = seconds × cores, memory-seconds = seconds × GiB, gpu-seconds = seconds × GPUs,
over the part of the run inside the asked date range. Pure functions over rows, plus the
few queries that read them.
"""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ..db.models import Tenant, utcnow
from ..db.models_data import Data, DataFile
from ..db.models_jobs import Job, JobFile
from ..db.models_usage import ResourceSample, UsageRecord
from .validation import ValidationError

KINDS = ("training", "inference", "preprocessing", "notebook", "tensorboard")
GROUPS = ("tenant", "user", "kind")
#: KAMONOHASHI's resource history CSV (ResourceController, histories/containers/data)
HISTORY_COLUMNS = ("SampledAt", "NodeName", "NodeCpu", "NodeMemory", "NodeGpu", "TenantId", "TenantName",
                   "ContainerName", "Cpu", "Memory", "Gpu", "Status")
#: the ledger's CSV (usage per run)
USAGE_COLUMNS = ("TenantId", "TenantName", "UserName", "Kind", "Id", "ContainerName", "Node", "Cpu", "Memory",
                 "Gpu", "StartedAt", "EndedAt", "Seconds", "CpuSeconds", "MemorySeconds", "GpuSeconds")


# ---------------------------------------------------------------------------- recording
def open_run(db: Session, *, kind: str, ref_id: int, name: str, tenant: Tenant, user: str, cpu: float,
             memory: float, gpu: int, node: str | None, started_at: datetime | None = None) -> UsageRecord:
    """Record that `kind` `ref_id` started holding cpu/memory/gpu (once: an open run is kept).
    The caller commits."""
    found = db.scalar(select(UsageRecord).where(UsageRecord.kind == kind, UsageRecord.ref_id == ref_id,
                                                UsageRecord.ended_at.is_(None)))
    if found is not None:
        if node and not found.node:
            found.node = node
        return found
    row = UsageRecord(kind=kind, ref_id=ref_id, name=name, tenant_id=tenant.id, tenant_name=tenant.name,
                      user_name=user or "", cpu=float(cpu or 0), memory=float(memory or 0), gpu=int(gpu or 0),
                      node=node, started_at=started_at or utcnow())
    db.add(row)
    return row


def close_run(db: Session, kind: str, ref_id: int, ended_at: datetime | None = None,
              started_at: datetime | None = None) -> UsageRecord | None:
    """Record the end of the open run of `kind` `ref_id` (nothing when none is open). `started_at`,
    when the backend knows the container's own start, replaces the start recorded at launch
    (the image pull before it held nothing). The caller commits."""
    row = db.scalar(select(UsageRecord).where(UsageRecord.kind == kind, UsageRecord.ref_id == ref_id,
                                              UsageRecord.ended_at.is_(None)).order_by(UsageRecord.id.desc()))
    if row is None:
        return None
    end = ended_at or utcnow()
    if started_at is not None and started_at <= end:
        row.started_at = started_at
    row.ended_at = max(end, row.started_at)
    return row


def job_started(db: Session, job: Job, tenant: Tenant) -> None:
    open_run(db, kind=job.kind, ref_id=job.id, name=job.key, tenant=tenant, user=job.created_by or "",
             cpu=job.cpu, memory=job.memory, gpu=job.gpu, node=job.node, started_at=job.started_at)


def job_ended(db: Session, job: Job, result=None) -> None:
    """The job's run ends at its completion; the container's own start and end (podman's or the
    pod's, when the backend's result has them) are the real ones."""
    started = getattr(result, "started_at", None)
    ended = getattr(result, "finished_at", None)
    close_run(db, job.kind, job.id, ended_at=ended or job.completed_at, started_at=started)


# ---------------------------------------------------------------------------- reading
def parse_day(value: str | None, name: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise ValidationError({name: ["must be a date, YYYY-MM-DD"]})


def date_range(start: str | None, end: str | None, default_days: int = 30) -> tuple[datetime, datetime]:
    """[start 00:00, the day after end 00:00) in UTC; end defaults to today, start to end - 29 days."""
    end_day = parse_day(end, "endDate") or utcnow().date()
    start_day = parse_day(start, "startDate") or end_day - timedelta(days=default_days - 1)
    if start_day > end_day:
        raise ValidationError({"startDate": ["must not be after endDate"]})
    if (end_day - start_day).days > 366 * 5:
        raise ValidationError({"startDate": ["the range may span at most five years"]})
    return datetime.combine(start_day, time()), datetime.combine(end_day + timedelta(days=1), time())


def overlap_seconds(started: datetime, ended: datetime | None, start: datetime, end: datetime,
                    now: datetime) -> float:
    """Seconds of [started, ended or now) inside [start, end)."""
    stop = min(ended if ended is not None else now, end)
    begin = max(started, start)
    return max(0.0, (stop - begin).total_seconds())


def records(db: Session, start: datetime, end: datetime, *, tenant_id: int | None = None,
            user: str | None = None, kind: str | None = None) -> list[UsageRecord]:
    query = select(UsageRecord).where(UsageRecord.started_at < end,
                                      or_(UsageRecord.ended_at.is_(None), UsageRecord.ended_at > start))
    if tenant_id is not None:
        query = query.where(UsageRecord.tenant_id == tenant_id)
    if user:
        query = query.where(UsageRecord.user_name == user)
    if kind:
        if kind not in KINDS:
            raise ValidationError({"kind": [f"must be one of {', '.join(KINDS)}"]})
        query = query.where(UsageRecord.kind == kind)
    return list(db.scalars(query.order_by(UsageRecord.started_at, UsageRecord.id)).all())


def shown_ids(db: Session, rows: list[UsageRecord]) -> dict[int, int]:
    """{job table id: the id the tenant sees it by} of the jobs (and TensorBoards' trainings) among `rows`."""
    ids = {r.ref_id for r in rows if r.kind != "notebook"}
    if not ids:
        return {}
    return dict(db.execute(select(Job.id, Job.display_id).where(Job.id.in_(ids))).all())


def run_usage(row: UsageRecord, start: datetime, end: datetime, now: datetime | None = None,
              shown: dict[int, int] | None = None) -> dict:
    """One run's usage inside [start, end), as the API and the CSV show it; `id` is the id the tenant
    sees (shown_ids), the job's table id when it is gone."""
    now = now or utcnow()
    ref = row.ref_id if row.kind == "notebook" else (shown or {}).get(row.ref_id, row.ref_id)
    seconds = overlap_seconds(row.started_at, row.ended_at, start, end, now)
    return {"tenantId": row.tenant_id, "tenantName": row.tenant_name, "userName": row.user_name, "kind": row.kind,
            "id": ref, "containerName": row.name, "node": row.node, "cpu": row.cpu, "memory": row.memory,
            "gpu": row.gpu, "startedAt": _iso(row.started_at), "endedAt": _iso(row.ended_at),
            "seconds": round(seconds, 3), "cpuSeconds": round(seconds * row.cpu, 3),
            "memorySeconds": round(seconds * row.memory, 3), "gpuSeconds": round(seconds * row.gpu, 3)}


def summarize(runs: list[dict], group_by: list[str]) -> list[dict]:
    """Totals of `runs` (run_usage dicts) per group (tenant, user and/or kind)."""
    key_fields = {"tenant": ("tenantId", "tenantName"), "user": ("userName",), "kind": ("kind",)}
    totals: dict[tuple, dict] = {}
    for run in runs:
        key = tuple(run[f] for g in group_by for f in key_fields[g])
        row = totals.get(key)
        if row is None:
            row = totals[key] = {**{f: run[f] for g in group_by for f in key_fields[g]},
                                 "runs": 0, "seconds": 0.0, "cpuSeconds": 0.0, "memorySeconds": 0.0,
                                 "gpuSeconds": 0.0}
        row["runs"] += 1
        for f in ("seconds", "cpuSeconds", "memorySeconds", "gpuSeconds"):
            row[f] = round(row[f] + run[f], 3)
    return sorted(totals.values(), key=lambda r: -r["cpuSeconds"])


def daily(rows: list[UsageRecord], start: datetime, end: datetime, group_by: str, now: datetime | None = None
          ) -> list[dict]:
    """cpu-, memory- and gpu-seconds per day and group (for the chart)."""
    now = now or utcnow()
    label = {"tenant": lambda r: r.tenant_name, "user": lambda r: r.user_name, "kind": lambda r: r.kind}[group_by]
    sums: dict[tuple, list] = defaultdict(lambda: [0.0, 0.0, 0.0])
    day = start
    while day < end:
        next_day = day + timedelta(days=1)
        for r in rows:
            s = overlap_seconds(r.started_at, r.ended_at, day, next_day, now)
            if s:
                acc = sums[(day.date().isoformat(), label(r))]
                acc[0] += s * r.cpu
                acc[1] += s * r.memory
                acc[2] += s * r.gpu
        day = next_day
    return [{"date": d, "group": g, "cpuSeconds": round(v[0], 3), "memorySeconds": round(v[1], 3),
             "gpuSeconds": round(v[2], 3)} for (d, g), v in sorted(sums.items())]


def check_group_by(value: str | None) -> list[str]:
    groups = [g for g in (value or "tenant,user,kind").split(",") if g]
    bad = [g for g in groups if g not in GROUPS]
    if bad or not groups:
        raise ValidationError({"groupBy": [f"must be a comma-separated list of {', '.join(GROUPS)}"]})
    return list(dict.fromkeys(groups))


def usage_csv(runs: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(USAGE_COLUMNS)
    fields = ("tenantId", "tenantName", "userName", "kind", "id", "containerName", "node", "cpu", "memory", "gpu",
              "startedAt", "endedAt", "seconds", "cpuSeconds", "memorySeconds", "gpuSeconds")
    for run in runs:
        writer.writerow(["" if run[f] is None else run[f] for f in fields])
    return out.getvalue()


# ---------------------------------------------------------------------------- stored bytes
def stored_bytes(db: Session, tenant: Tenant, store=None) -> dict:
    """What a tenant stores: the files of its data, and its jobs' outputs (output folders as the
    object store lists them, plus the logs and zips registered on the jobs)."""
    data = db.scalar(select(func.coalesce(func.sum(DataFile.size), 0)).join(Data, Data.id == DataFile.data_id)
                     .where(Data.tenant_id == tenant.id)) or 0
    files = db.scalar(select(func.coalesce(func.sum(JobFile.size), 0)).join(Job, Job.id == JobFile.job_id)
                      .where(Job.tenant_id == tenant.id)) or 0
    outputs = 0
    if store is not None:
        from ..storage.factory import tenant_key

        for folder in ("TrainingContainerOutputFiles", "InferenceContainerOutputFiles",
                       "PreprocContainerOutputFiles", "NotebookContainerOutputFiles"):
            try:
                outputs += sum(info.size for info in store.list(tenant_key(tenant, folder) + "/"))
            except Exception:  # an unreachable store: what the database knows
                break
    return {"tenantId": tenant.id, "tenantName": tenant.name, "displayName": tenant.display_name,
            "dataBytes": int(data), "outputBytes": int(outputs + files), "totalBytes": int(data + outputs + files)}


# ---------------------------------------------------------------------------- samples
def history_rows(db: Session, start: datetime, end: datetime) -> list[ResourceSample]:
    return list(db.scalars(select(ResourceSample).where(ResourceSample.sampled_at >= start,
                                                        ResourceSample.sampled_at < end)
                           .order_by(ResourceSample.sampled_at, ResourceSample.node_name,
                                     ResourceSample.id)).all())


def history_csv(rows: list[ResourceSample], with_header: bool = True) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if with_header:
        writer.writerow(HISTORY_COLUMNS)
    for r in rows:
        writer.writerow([r.sampled_at.strftime("%Y-%m-%d %H:%M:%S"), r.node_name, _blank(r.node_cpu),
                         _blank(r.node_memory), _blank(r.node_gpu), _blank(r.tenant_id), r.tenant_name or "",
                         r.container_name or "", _blank(r.cpu), _blank(r.memory), _blank(r.gpu), r.status or ""])
    return out.getvalue()


def history_metadata(db: Session) -> dict:
    """KAMONOHASHI's histories/.../metadata: how many rows there are and since when."""
    count, first, last = db.execute(select(func.count(ResourceSample.id), func.min(ResourceSample.sampled_at),
                                           func.max(ResourceSample.sampled_at))).one()
    return {"count": int(count or 0), "startDate": first.date().isoformat() if first else None,
            "endDate": last.date().isoformat() if last else None}


def purge_history(db: Session, before: datetime) -> int:
    rows = db.scalars(select(ResourceSample).where(ResourceSample.sampled_at < before)).all()
    for r in rows:
        db.delete(r)
    db.commit()
    return len(rows)


def take_sample(db: Session, nodes: list[dict], containers: list[dict], at: datetime | None = None) -> int:
    """Store one sample: a row per container, with its node's size.
    `nodes` and `containers` are the resource view's (domain/resources.py) dicts."""
    at = (at or utcnow()).replace(microsecond=0)
    count = 0
    sizes = {n["name"]: n for n in nodes}
    for c in containers:  # (as KAMONOHASHI: a row per container; an idle node has none)
        name = c.get("nodeName") or "-"
        node = sizes.get(name) or {}
        base = dict(sampled_at=at, node_name=name, node_cpu=node.get("allocatableCpu"),
                    node_memory=node.get("allocatableMemory"), node_gpu=node.get("allocatableGpu"))
        db.add(ResourceSample(**base, tenant_id=c.get("tenantId"), tenant_name=c.get("tenantName"),
                              container_name=c["name"], cpu=c.get("cpu"), memory=c.get("memory"),
                              gpu=c.get("gpu"), status=c.get("status")))
        count += 1
    db.commit()
    return count


def _blank(value):
    return "" if value is None else value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def set_node(db: Session, kind: str, ref_id: int, node: str) -> None:
    """The node an open run landed on (a pod is placed after it was launched). The caller commits."""
    row = db.scalar(select(UsageRecord).where(UsageRecord.kind == kind, UsageRecord.ref_id == ref_id,
                                              UsageRecord.ended_at.is_(None)))
    if row is not None:
        row.node = node


#: KAMONOHASHI's job history CSV (ResourceController, histories/jobs/data)
JOB_HISTORY_COLUMNS = ("NodeName", "NodeCpu", "NodeMemory", "NodeGpu", "TenantId", "TenantName", "JobCreatedAt",
                       "JobStartedAt", "JobCompletedAt", "ContainerName", "Cpu", "Memory", "Gpu", "Status")


def job_history(db: Session, start: datetime, end: datetime, node_sizes: dict[str, dict]) -> list[list]:
    """The ended runs of the ledger whose job was created in [start, end), as KAMONOHASHI's job
    history rows (its created time and status from the job's or notebook's row when it still exists)."""
    from ..db.models_notebooks import Notebook

    rows = db.scalars(select(UsageRecord).where(UsageRecord.ended_at.is_not(None))
                      .order_by(UsageRecord.started_at, UsageRecord.id)).all()
    job_ids = [r.ref_id for r in rows if r.kind in ("training", "inference", "preprocessing")]
    notebook_ids = [r.ref_id for r in rows if r.kind == "notebook"]
    jobs = {j.id: j for j in db.scalars(select(Job).where(Job.id.in_(job_ids))).all()} if job_ids else {}
    notebooks = ({n.id: n for n in db.scalars(select(Notebook).where(Notebook.id.in_(notebook_ids))).all()}
                 if notebook_ids else {})
    out = []
    for r in rows:
        owner = jobs.get(r.ref_id) if r.kind in ("training", "inference", "preprocessing") else (
            notebooks.get(r.ref_id) if r.kind == "notebook" else None)
        created = owner.created_at if owner is not None else r.started_at
        if not start <= created < end:
            continue
        status = owner.status if owner is not None else "Closed"
        size = node_sizes.get(r.node or "") or {}
        out.append([r.node or "", _blank(size.get("allocatableCpu")), _blank(size.get("allocatableMemory")),
                    _blank(size.get("allocatableGpu")), r.tenant_id, r.tenant_name, _stamp(created),
                    _stamp(r.started_at), _stamp(r.ended_at), r.name, r.cpu, r.memory, r.gpu, status])
    out.sort(key=lambda row: row[6])
    return out


def job_history_csv(rows: list[list], with_header: bool = True) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if with_header:
        writer.writerow(JOB_HISTORY_COLUMNS)
    writer.writerows(rows)
    return out.getvalue()


def job_history_metadata(db: Session) -> dict:
    count, first, last = db.execute(select(func.count(UsageRecord.id), func.min(UsageRecord.started_at),
                                           func.max(UsageRecord.started_at))
                                    .where(UsageRecord.ended_at.is_not(None))).one()
    return {"count": int(count or 0), "startDate": first.date().isoformat() if first else None,
            "endDate": last.date().isoformat() if last else None}


def _stamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""
