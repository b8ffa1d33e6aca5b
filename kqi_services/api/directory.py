"""Directory sync (issue 16): POST /admin/directory/sync, a system administrator's "sync now".

The hub's authenticator (KQI_AUTHENTICATOR=ldap) reads every directory user, their groups and
display names and applies the group-to-tenant mapping (kqi_hub_config/directory_auth.py); this
route asks it to, keeps the display names in the users' settings, and names the notebooks and jobs
still running in tenants that users left, for the administrator to stop or keep.
"""
from __future__ import annotations

from sqlalchemy import select

from ..db.models import Tenant, UserSetting
from ..db.models_jobs import Job
from ..db.models_notebooks import Notebook
from ..domain import job_status, notebooks as notebook_rules
from ..hub_client import HubError
from ..permissions import Access
from .base import ApiError, BaseAPIHandler
from .schemas.core import contract
from .schemas.directory import DirectorySyncInfoOutput, DirectorySyncOutput


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


default_handlers = [
    (r"/admin/directory/sync", DirectorySyncHandler),
]
