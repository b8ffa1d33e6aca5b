"""Resources: KAMONOHASHI's resource monitor (/admin/resource/*, system administrators;
/tenant/resource/*, tenant administrators), what the caller can use now
(/tenant/resource/available, any member) and the usage ledger's report (KQI additions).

The rules are in domain/resources.py and domain/usage.py; these handlers parse, call and answer.
"""
from __future__ import annotations

import os
from datetime import datetime, time, timedelta

from ..db.models import Tenant
from ..db.models_jobs import Job
from ..domain import job_status as st
from ..domain import resources, usage
from ..domain.notebooks import NotebookManager
from ..db.models_notebooks import Notebook
from ..jobs.engine import ATTACH_FOLDER, log_name
from ..permissions import Access
from ..storage.factory import tenant_key
from ..storage.local import LocalObjectStore
from .base import BaseAPIHandler
from .schemas import resources as models
from .schemas.core import contract

LOG_TAIL_BYTES = 1 << 20
LOG_TAIL_LINES = 5000


class _ResourceHandler(BaseAPIHandler):
    access = Access.SYSTEM_ADMIN
    #: None: every tenant (system administrators); the current tenant on the /tenant routes
    scoped = False

    def scope(self) -> Tenant | None:
        return self.tenant if self.scoped else None

    def containers(self) -> list[dict]:
        return resources.containers(self.db, self.kqi, self.scope())

    def container(self, name: str, tenant_id: str | None = None) -> dict:
        number = self.int_path(tenant_id, "tenantId") if tenant_id is not None else None
        return resources.find_container(self.db, self.kqi, name, self.scope(), number)


# --------------------------------------------------------------------------- monitor
class NodesHandler(_ResourceHandler):
    @contract(response=list[models.NodeResourceOutput])
    def get(self):
        self.write_json(resources.node_list(self.db, self.kqi, self.containers(), self.scope()))


class TenantNodesHandler(NodesHandler):
    access = Access.TENANT_ADMIN
    scoped = True


class TenantsHandler(_ResourceHandler):
    @contract(response=list[models.TenantResourceOutput])
    def get(self):
        self.write_json(resources.tenant_list(self.db, self.containers()))


class ContainerTypesHandler(_ResourceHandler):
    @contract(response=list[models.ContainerTypeOutput])
    def get(self):
        self.write_json([{"id": i, "name": n} for i, n in ((1, "Training"), (2, "TensorBoard"), (3, "Preprocessing"),
                                                            (4, "Inferencing"), (5, "Notebook"))])


class ContainersHandler(_ResourceHandler):
    @contract(response=list[models.ContainerOutput])
    def get(self):
        self.write_json(self.containers())


class TenantContainersHandler(ContainersHandler):
    access = Access.TENANT_ADMIN
    scoped = True


class ContainerHandler(_ResourceHandler):
    @contract(response=models.ContainerOutput)
    def get(self, *args):
        self.write_json(self.container(args[-1], *args[:-1]))

    @contract(response=None, status=204, errors=(409,))
    async def delete(self, *args):
        found = self.container(args[-1], *args[:-1])
        who = self.identity.name
        if found["kind"] == "notebook":
            nb = self.db.get(Notebook, found["id"])
            tenant = self.db.get(Tenant, nb.tenant_id)
            await NotebookManager(self.db, tenant, nb.created_by, self.kqi).halt(nb)
        elif found["kind"] == "tensorboard":
            await self.in_thread(self.kqi.tensorboards.stop, self.db, resources.container_job(self.db, found),
                                 f"was stopped by {who} (resource monitor)")
        else:
            job = resources.container_job(self.db, found)
            async with self.kqi.jobs._lock:
                await self.in_thread(self.kqi.jobs.halt, self.db, job, st.KILLED,
                                     f"halted by {who} from the resource monitor")
        self.log.info("%s stopped the container %s of tenant %s", who, found["name"], found["tenantName"])
        self.no_content()


class TenantContainerHandler(ContainerHandler):
    access = Access.TENANT_ADMIN
    scoped = True


class ContainerLogHandler(_ResourceHandler):
    @contract(response=str, content_type="text/plain")
    async def get(self, *args):
        found = self.container(args[-1], *args[:-1])
        text = b""
        if found["kind"] in ("training", "inference", "preprocessing"):
            job = resources.container_job(self.db, found)
            text = await self.in_thread(self._job_log, job)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(text)

    def _job_log(self, job: Job) -> bytes:
        """The last MiB of the job's log (the runtime's stdout+stderr)."""
        tenant = self.db.get(Tenant, job.tenant_id)
        store = self.kqi.stores.for_tenant(tenant)
        key = tenant_key(tenant, f"{ATTACH_FOLDER[job.kind]}/{job.id}/{log_name(job)}")
        if isinstance(store, LocalObjectStore):
            path = store.path(key)
        else:
            path = os.path.join(self.kqi.jobs.backend.job_dir(job.key), "attach", log_name(job))
        if not os.path.exists(path) or os.path.islink(path):
            logs = getattr(self.kqi.jobs.backend, "logs", None)  # Kubernetes: the pod's log as it keeps it
            return logs(job.key, tail_lines=LOG_TAIL_LINES).encode() if logs is not None else b""
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - LOG_TAIL_BYTES))
            return f.read()


class TenantContainerLogHandler(ContainerLogHandler):
    access = Access.TENANT_ADMIN
    scoped = True


class ContainerEventsHandler(_ResourceHandler):
    @contract(response=list[models.EventOutput])
    def get(self, tenant_id, name):
        found = self.container(name, tenant_id)
        self.write_json(resources.container_events(self.db, self.kqi, found))


# --------------------------------------------------------------------------- what can I use
class AvailableHandler(BaseAPIHandler):
    """GET /tenant/resource/available (KQI): quota, use, free room per node, and for a request
    (?cpu=&memory=&gpu=&partition=) whether it would start now and what holds it back."""

    access = Access.TENANT_USER

    @contract(query=models.AvailableQuery, response=models.AvailableOutput)
    def get(self):
        q = self.query
        request = None
        if q.cpu is not None or q.memory is not None or q.gpu is not None:
            request = {"cpu": q.cpu or 0, "memory": q.memory or 0, "gpu": q.gpu or 0, "partition": q.partition}
        self.write_json(resources.available(self.db, self.kqi, self.tenant, self.identity.name, request))


# --------------------------------------------------------------------------- usage ledger
class UsageHandler(BaseAPIHandler):
    """GET /admin/resource/usage (KQI): cpu-, memory- and gpu-seconds per tenant/user/kind over a
    date range, each run, a daily series for the chart, and what each tenant stores."""

    access = Access.SYSTEM_ADMIN
    scoped = False

    def report(self) -> tuple[dict, list[dict]]:
        q = self.query
        start, end = usage.date_range(q.startDate, q.endDate)
        group_by = usage.check_group_by(q.groupBy)
        tenant_id = self.tenant.id if self.scoped else q.tenantId
        rows = usage.records(self.db, start, end, tenant_id=tenant_id, user=q.userName or None, kind=q.kind)
        now = usage.utcnow()
        shown = usage.shown_ids(self.db, rows)
        runs = [usage.run_usage(r, start, end, now, shown) for r in rows]
        return {"startDate": start.date().isoformat(), "endDate": (end - timedelta(days=1)).date().isoformat(),
                "groupBy": group_by, "totals": usage.summarize(runs, group_by), "runs": runs,
                "daily": usage.daily(rows, start, end, q.chartBy or "tenant", now)}, runs

    def storage(self) -> list[dict]:
        tenants = [self.tenant] if self.scoped else list(self.db.query(Tenant).order_by(Tenant.id).all())
        out = []
        for t in tenants:
            try:
                store = self.kqi.stores.for_tenant(t)
            except Exception:
                store = None
            out.append(usage.stored_bytes(self.db, t, store))
        return out

    @contract(query=models.UsageQuery, response=models.UsageReportOutput)
    async def get(self):
        report, _ = self.report()
        report["storage"] = await self.in_thread(self.storage)
        self.write_json(report)


class TenantUsageHandler(UsageHandler):
    access = Access.TENANT_ADMIN
    scoped = True


class UsageCsvHandler(UsageHandler):
    """The report's runs as CSV (one line per run: its seconds inside the range)."""

    @contract(query=models.UsageQuery, response=str, content_type="text/csv")
    def get(self):
        _, runs = self.report()
        self.set_header("Content-Type", "text/csv; charset=UTF-8")
        self.set_header("Content-Disposition", f'attachment; filename="{datetime.now():%Y%m%d%H%M%S}_usage.csv"')
        self.finish(usage.usage_csv(runs))


class TenantUsageCsvHandler(UsageCsvHandler):
    access = Access.TENANT_ADMIN
    scoped = True


class StorageUsageHandler(UsageHandler):
    @contract(response=list[models.StorageUsageOutput])
    async def get(self):
        self.write_json(await self.in_thread(self.storage))


# --------------------------------------------------------------------------- history (KAMONOHASHI)
class HistoryMetadataHandler(BaseAPIHandler):
    access = Access.SYSTEM_ADMIN

    @contract(response=models.HistoryMetadataOutput)
    def get(self):
        self.write_json(usage.history_metadata(self.db))


def _day_bounds(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    lower = usage.parse_day(start, "startDate")
    upper = usage.parse_day(end, "endDate")
    return (datetime.combine(lower, time()) if lower else datetime.min,
            datetime.combine(upper + timedelta(days=1), time()) if upper else datetime.max)


class HistoryDataHandler(BaseAPIHandler):
    """GET /admin/resource/histories/containers/data: the hourly samples as KAMONOHASHI's CSV."""

    access = Access.SYSTEM_ADMIN

    @contract(query=models.HistoryDataQuery, response=str, content_type="text/csv")
    def get(self):
        start, end = _day_bounds(self.query.startDate, self.query.endDate)
        header = (self.query.withHeader or "").lower() in ("true", "1", "yes")
        text = usage.history_csv(usage.history_rows(self.db, start, end), header)
        self.set_header("Content-Type", "text/csv; charset=UTF-8")
        self.set_header("Content-Disposition", f'attachment; filename="{datetime.now():%Y%m%d%H%M%S}_container.csv"')
        self.finish(text)


class HistoryPurgeHandler(BaseAPIHandler):
    """PATCH /admin/resource/histories/containers {endDate}: remove the samples up to that day (all without)."""

    access = Access.SYSTEM_ADMIN

    @contract(body=models.HistoryDeleteInput, response=models.HistoryMetadataOutput)
    def patch(self):
        end = usage.parse_day(self.body.endDate, "endDate")
        before = datetime.combine(end + timedelta(days=1), time()) if end else datetime.max
        removed = usage.purge_history(self.db, before)
        self.log.info("%s removed %d resource samples", self.identity.name, removed)
        self.write_json(usage.history_metadata(self.db))


class JobHistoryMetadataHandler(BaseAPIHandler):
    """GET /admin/resource/histories/jobs/metadata: how many ended runs the usage ledger holds, since when."""

    access = Access.SYSTEM_ADMIN

    @contract(response=models.HistoryMetadataOutput)
    def get(self):
        self.write_json(usage.job_history_metadata(self.db))


class JobHistoryDataHandler(BaseAPIHandler):
    """GET /admin/resource/histories/jobs/data: the ended runs (jobs, notebooks, TensorBoards) as
    KAMONOHASHI's job history CSV, by the day their job was created. Kept: the ledger is not purged."""

    access = Access.SYSTEM_ADMIN

    @contract(query=models.HistoryDataQuery, response=str, content_type="text/csv")
    def get(self):
        start, end = _day_bounds(self.query.startDate, self.query.endDate)
        header = (self.query.withHeader or "").lower() in ("true", "1", "yes")
        conts = resources.containers(self.db, self.kqi)
        sizes = {n["name"]: n for n in resources.node_list(self.db, self.kqi, conts)}
        text = usage.job_history_csv(usage.job_history(self.db, start, end, sizes), header)
        self.set_header("Content-Type", "text/csv; charset=UTF-8")
        self.set_header("Content-Disposition", f'attachment; filename="{datetime.now():%Y%m%d%H%M%S}_job.csv"')
        self.finish(text)


_ADMIN = r"/admin/resource"
_TENANT = r"/tenant/resource"
default_handlers = [
    (_ADMIN + r"/nodes", NodesHandler),
    (_ADMIN + r"/tenants", TenantsHandler),
    (_ADMIN + r"/container-types", ContainerTypesHandler),
    (_ADMIN + r"/containers", ContainersHandler),
    (_ADMIN + r"/containers/([^/]+)/([^/]+)/log", ContainerLogHandler),
    (_ADMIN + r"/containers/([^/]+)/([^/]+)/events", ContainerEventsHandler),
    (_ADMIN + r"/containers/([^/]+)/([^/]+)", ContainerHandler),
    (_ADMIN + r"/usage", UsageHandler),
    (_ADMIN + r"/usage/csv", UsageCsvHandler),
    (_ADMIN + r"/storage", StorageUsageHandler),
    (_ADMIN + r"/histories/containers/metadata", HistoryMetadataHandler),
    (_ADMIN + r"/histories/containers/data", HistoryDataHandler),
    (_ADMIN + r"/histories/containers", HistoryPurgeHandler),
    (_ADMIN + r"/histories/jobs/metadata", JobHistoryMetadataHandler),
    (_ADMIN + r"/histories/jobs/data", JobHistoryDataHandler),
    (_TENANT + r"/nodes", TenantNodesHandler),
    (_TENANT + r"/containers", TenantContainersHandler),
    (_TENANT + r"/containers/([^/]+)/log", TenantContainerLogHandler),
    (_TENANT + r"/containers/([^/]+)", TenantContainerHandler),
    (_TENANT + r"/available", AvailableHandler),
    (_TENANT + r"/usage", TenantUsageHandler),
    (_TENANT + r"/usage/csv", TenantUsageCsvHandler),
]
