"""Training: the guide's 学習管理 over the job engine (/training/...), and its TensorBoard."""
from __future__ import annotations

from sqlalchemy import select

from ..db.models import Tenant
from ..db.models_jobs import Job
from ..permissions import Access
from .base import ApiError, BaseAPIHandler
from .jobs_common import JobHandlerBase, job_routes, kind_classes
from .schemas.core import contract
from .schemas.jobs import AdminTensorBoardOutput, AdminTensorBoardQuery, TensorBoardInput, TensorBoardOutput


class TensorBoardHandler(JobHandlerBase):
    """GET, PUT (start: expiresIn seconds, selectedHistoryIds) and DELETE (stop) a training's TensorBoard."""

    kind = "training"
    access = {"GET": Access.TENANT_USER, "PUT": Access.TENANT_USER, "DELETE": Access.TENANT_USER}

    @property
    def boards(self):
        return self.kqi.tensorboards

    @contract(response=TensorBoardOutput)
    def get(self, training_id):
        self.write_json(self.boards.view(self.job(training_id)))

    @contract(body=TensorBoardInput, body_required=False, response=TensorBoardOutput, errors=(409,))
    async def put(self, training_id):
        job = self.job(training_id)
        body = self.json_body(required=False)
        expires, ids = self.boards.check_request(self.db, self.tenant, job, body)
        await self.in_thread(self.boards.start, self.db, self.tenant, job, expires, ids, self.identity.name)
        self.write_json(self.boards.view(job))

    @contract(response=None, status=204)
    async def delete(self, training_id):
        job = self.job(training_id)
        if not self.boards.state(job):
            raise ApiError(404, f"No TensorBoard runs for training {job.id}.")
        await self.in_thread(self.boards.stop, self.db, job)
        self.no_content()


class AdminTensorBoardListHandler(BaseAPIHandler):
    """GET /admin/tensorboards: every running TensorBoard of every tenant."""

    access = {"GET": Access.SYSTEM_ADMIN}

    @contract(response=list[AdminTensorBoardOutput], paged=True)
    def get(self):
        out = []
        jobs = self.kqi.tensorboards.all_jobs(self.db)
        tenants = {t.id: t for t in self.db.scalars(select(Tenant).where(
            Tenant.id.in_({j.tenant_id for j in jobs})))} if jobs else {}  # one query, not one per row
        for job in jobs:
            tenant = tenants.get(job.tenant_id)
            view = self.kqi.tensorboards.view(job)
            out.append({"trainingId": job.display_id, "trainingName": job.name, "tenantId": job.tenant_id,
                        "tenantName": tenant.name if tenant else None, **view})
        self.write_json(self.paginate(out))


class AdminTensorBoardHandler(BaseAPIHandler):
    """DELETE /admin/tensorboards/{trainingId}?tenantId=: stop any tenant's TensorBoard (the training
    by its id in its tenant; tenantId tells the tenant when several have such a TensorBoard)."""

    access = {"DELETE": Access.SYSTEM_ADMIN}

    @contract(query=AdminTensorBoardQuery, response=None, status=204, errors=(400,))
    async def delete(self, training_id):
        training_id = self.int_path(training_id)
        tenant_id = self.query.tenantId
        jobs = [j for j in self.kqi.tensorboards.all_jobs(self.db)
                if j.display_id == training_id and tenant_id in (None, j.tenant_id)]
        if not jobs:
            raise ApiError(404, f"No TensorBoard runs for training {training_id}.")
        if len(jobs) > 1:
            raise ApiError(400, f"Trainings {training_id} of several tenants have a TensorBoard: name the tenant"
                                " (tenantId=).", {"tenantId": ["is needed: " + ", ".join(
                                    str(j.tenant_id) for j in jobs)]})
        job = jobs[0]
        await self.in_thread(self.kqi.tensorboards.stop, self.db, job, "stopped by a system administrator")
        self.no_content()


CLASSES = kind_classes("training")

default_handlers = job_routes("training", CLASSES) + [
    (r"/training/([0-9]+)/tensorboard", TensorBoardHandler),
    (r"/admin/tensorboards", AdminTensorBoardListHandler),
    (r"/admin/tensorboards/([0-9]+)", AdminTensorBoardHandler),
]
