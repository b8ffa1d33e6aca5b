"""Directory sync (issue 16): POST /admin/directory/sync, a system administrator's "sync now".

The hub's authenticator (KQI_AUTHENTICATOR=ldap) reads every directory user, their groups and
display names and applies the group-to-tenant mapping (kqi_hub_config/directory_auth.py); this
route asks it to, keeps the display names in the users' settings, and names the notebooks and jobs
still running in tenants that users left, for the administrator to stop or keep.

GET /admin/directory/orphans: the same question without a sync, whenever a tenant was lost (at a
sign-in, a sync, or by hand): every running or queued notebook, job and TensorBoard whose owner is
no longer a member of its tenant (the hub's groups now), read afresh at each call.
"""
from __future__ import annotations

import asyncio

from sqlalchemy import select

from ..db.models import Tenant, UserSetting
from ..db.models_jobs import Job
from ..db.models_notebooks import Notebook
from ..domain import job_status, notebooks as notebook_rules
from ..tensorboard import STATE as TENSORBOARD, with_tensorboard
from ..hub_client import HubError
from ..permissions import Access
from .base import ApiError, BaseAPIHandler
from .schemas.core import contract
from .schemas.directory import DirectoryOrphansOutput, DirectorySyncInfoOutput, DirectorySyncOutput


def still_running(db, user: str, tenant_names: list[str]) -> list[dict]:
    """The user's notebooks and jobs that run (or wait to) in the named tenants."""
    if not tenant_names:
        return []
    tenants = {t.id: t for t in db.scalars(select(Tenant).where(Tenant.name.in_(tenant_names)))}
    if not tenants:
        return []
    found = []
    for nb in db.scalars(select(Notebook).where(
            Notebook.tenant_id.in_(tenants), Notebook.created_by == user,
            Notebook.status.in_((notebook_rules.RUNNING, notebook_rules.PENDING))).order_by(Notebook.id)):
        tenant = tenants[nb.tenant_id]
        found.append({"kind": "notebook", "id": nb.display_id, "name": nb.name, "status": nb.status,
                      "tenantId": tenant.id, "tenantName": tenant.name})
    for job in db.scalars(select(Job).where(
            Job.tenant_id.in_(tenants), Job.created_by == user,
            Job.status.in_(job_status.ACTIVE)).order_by(Job.id)):
        tenant = tenants[job.tenant_id]
        found.append({"kind": job.kind, "id": job.display_id, "name": job.name, "status": job.status,
                      "tenantId": tenant.id, "tenantName": tenant.name})
    return found


def running_objects(db) -> list[dict]:
    """Every running or queued notebook and job (training, inference, preprocessing) and every
    TensorBoard, with its tenant and owner (who made it; who started it, for a TensorBoard)."""
    tenants = {t.id: t for t in db.scalars(select(Tenant))}
    found = []

    def add(kind, tenant_id, display_id, name, status, owner):
        tenant = tenants.get(tenant_id)
        if tenant is not None and owner:
            found.append({"kind": kind, "id": display_id, "name": name, "status": status,
                          "tenantId": tenant.id, "tenantName": tenant.name, "owner": owner})

    for nb in db.scalars(select(Notebook).where(
            Notebook.status.in_((notebook_rules.RUNNING, notebook_rules.PENDING))).order_by(Notebook.id)):
        add("notebook", nb.tenant_id, nb.display_id, nb.name, nb.status, nb.created_by)
    for job in db.scalars(select(Job).where(Job.status.in_(job_status.ACTIVE)).order_by(Job.id)):
        add(job.kind, job.tenant_id, job.display_id, job.name, job.status, job.created_by)
    for job in sorted(db.scalars(with_tensorboard()), key=lambda j: j.id):  # (the indexed look-up)
        state = (job.extra or {}).get(TENSORBOARD)
        if state:  # kept until it ends (the service's reconcile clears the record then)
            add("tensorboard", job.tenant_id, job.display_id, job.name, "Running", state.get("startedBy"))
    return found


def orphans(objects: list[dict], owners: dict[str, dict | None]) -> list[dict]:
    """The objects whose owner is no longer a member of the object's tenant.

    `owners`: the hub's model of each owner (its "groups" are its tenants), None for a user the hub
    no longer has. Sorted by tenant, owner, kind and id."""
    out = []
    for obj in objects:
        model = owners.get(obj["owner"])
        if model is not None and obj["tenantName"] in (model.get("groups") or []):
            continue
        out.append({**obj, "ownerExists": model is not None})
    return sorted(out, key=lambda o: (o["tenantName"], o["owner"], o["kind"], o["id"]))


def keep_display_name(db, name: str, display_name: str | None) -> None:
    if not display_name:
        return
    setting = db.scalar(select(UserSetting).where(UserSetting.name == name))
    if setting is None:
        db.add(UserSetting(name=name, display_name=display_name))
    elif setting.display_name != display_name:
        setting.display_name = display_name


class DirectorySyncHandler(BaseAPIHandler):
    access = {"GET": Access.SYSTEM_ADMIN, "POST": Access.SYSTEM_ADMIN}

    @contract(response=DirectorySyncInfoOutput)
    async def get(self):
        self.write_json({"available": await self.kqi.hub.directory_sync_available()})

    @contract(response=DirectorySyncOutput, body_required=False)
    async def post(self):
        try:
            answer = await self.kqi.hub.directory_sync()
        except HubError as e:
            if e.status == 404:
                raise ApiError(400, "The hub's authenticator has no directory to sync with "
                                    "(KQI_AUTHENTICATOR=ldap has one).")
            raise ApiError(400 if e.status < 500 else 502, f"The directory sync failed: {e.message}")
        users = []
        for user in answer.get("users") or []:
            keep_display_name(self.db, user["name"], user.get("displayName"))
            users.append({**user, "stillRunning": still_running(self.db, user["name"], user.get("removed") or [])})
        self.db.commit()
        self.log.info("%s synced the directory: %d users", self.identity.name, len(users))
        self.write_json({"users": users})


class DirectoryOrphansHandler(BaseAPIHandler):
    """GET /admin/directory/orphans: what still runs in tenants its owner is no longer a member of."""

    access = {"GET": Access.SYSTEM_ADMIN}

    @contract(response=DirectoryOrphansOutput)
    async def get(self):
        objects = running_objects(self.db)
        names = sorted({o["owner"] for o in objects})
        try:
            models = await asyncio.gather(*(self.kqi.hub.get_user(name) for name in names))
        except HubError as e:
            raise ApiError(502, f"The hub did not answer who belongs to which tenant: {e.message}")
        self.write_json({"items": orphans(objects, dict(zip(names, models)))})


default_handlers = [
    (r"/admin/directory/sync", DirectorySyncHandler),
    (r"/admin/directory/orphans", DirectoryOrphansHandler),
]
