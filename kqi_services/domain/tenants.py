"""Tenant rules: names, references to git servers, registries and storage, quotas.

A tenant's members and administrators live in the hub (a group and two roles); its
settings live here. `TenantManager` keeps both sides in step and undoes the hub side
when the database side fails.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..db.models import GitServer, Registry, Storage, Tenant, utcnow
from .validation import ConflictError, Fields, NotFoundError

TENANT_NAME_PATTERN = r"[a-z]([-a-z0-9]*[a-z0-9])?"
TENANT_NAME_HELP = (
    "must be lower-case letters, digits and '-', start with a letter and not end with '-'"
)
RESERVED_PREFIXES = ("kqi-", "kube-")


def current_tenant(db: Session, user: str, tenant_names, *wanted) -> Tenant | None:
    """The tenant a request of `user` acts in among its tenants (`tenant_names`): the first of
    `wanted` (tenant ids as the caller sent them: a header, the tenant switcher's cookie; None or
    junk skipped) that is one of them, then the user's default tenant, then the lowest id."""
    names = sorted(tenant_names)
    rows = db.scalars(select(Tenant).where(Tenant.name.in_(names))).all() if names else []
    if len(rows) <= 1:
        return rows[0] if rows else None
    by_id = {t.id: t for t in rows}

    def default_tenant_id():  # (read only when nothing the caller sent names one)
        from ..db.models import UserSetting

        return db.scalar(select(UserSetting.default_tenant_id).where(UserSetting.name == user))

    for candidate in (*wanted, default_tenant_id):
        value = candidate() if callable(candidate) else candidate
        try:
            if int(value) in by_id:
                return by_id[int(value)]
        except (TypeError, ValueError):
            continue
    return min(rows, key=lambda t: t.id)


def read_tenant_fields(body: dict, db: Session, *, creating: bool) -> dict:
    """Check a create or edit body; returns the values to store. Raises ValidationError."""
    f = Fields(body)
    values = {}
    if creating:
        name = f.str("tenantName", required=True, max_length=128, pattern=TENANT_NAME_PATTERN,
                     pattern_help=TENANT_NAME_HELP)
        if name and name.startswith(RESERVED_PREFIXES):
            f.error("tenantName", "must not start with 'kqi-' or 'kube-'")
        values["name"] = name
    values["display_name"] = f.str("displayName", required=True, max_length=128)
    git_ids = f.int_list("gitIds", required=True)
    registry_ids = f.int_list("registryIds", required=True)
    values["default_git_id"] = f.int("defaultGitId")
    values["default_registry_id"] = f.int("defaultRegistryId")
    values["storage_id"] = f.int("storageId", required=True)
    values["available_infinite_time_notebook"] = f.bool("availableInfiniteTimeNotebook", default=False)
    values["limit_cpu"] = f.number("limitCpu", minimum=0)
    values["limit_memory"] = f.number("limitMemory", minimum=0)
    values["limit_gpu"] = f.int("limitGpu", minimum=0)
    if f.int_list("userGroupIds"):
        f.error("userGroupIds", "LDAP user groups are not used: tenant members are the hub group's members")

    gits = _rows(db, GitServer, git_ids, f, "gitIds")
    registries = _rows(db, Registry, registry_ids, f, "registryIds")
    if values["default_git_id"] is not None and values["default_git_id"] not in git_ids:
        f.error("defaultGitId", "must be one of gitIds")
    if values["default_registry_id"] is not None and values["default_registry_id"] not in registry_ids:
        f.error("defaultRegistryId", "must be one of registryIds")
    if values["default_git_id"] is None and git_ids:
        values["default_git_id"] = git_ids[0]
    if values["default_registry_id"] is None and registry_ids:
        values["default_registry_id"] = registry_ids[0]
    if values["storage_id"] is not None and db.get(Storage, values["storage_id"]) is None:
        f.error("storageId", f"no storage endpoint has the id {values['storage_id']}")
    f.done()
    values["git_servers"] = gits
    values["registries"] = registries
    return values


def _rows(db, model, ids, f: Fields, field: str):
    if not ids:
        return []
    rows = {r.id: r for r in db.scalars(select(model).where(model.id.in_(ids))).all()}
    missing = [i for i in ids if i not in rows]
    if missing:
        f.error(field, "unknown ids: " + ", ".join(str(i) for i in missing))
    return [rows[i] for i in ids if i in rows]


def tenant_index(t: Tenant) -> dict:
    return {
        "id": t.id,
        "name": t.name,
        "displayName": t.display_name,
        "storagePath": t.storage_path,
        "createdAt": t.created_at,
        "createdBy": t.created_by,
        "modifiedAt": t.modified_at,
        "modifiedBy": t.modified_by,
    }


def tenant_details(t: Tenant) -> dict:
    return {
        **tenant_index(t),
        "gitIds": [g.id for g in t.git_servers],
        "defaultGitId": t.default_git_id,
        "registryIds": [r.id for r in t.registries],
        "defaultRegistryId": t.default_registry_id,
        "storageId": t.storage_id,
        "availableInfiniteTimeNotebook": t.available_infinite_time_notebook,
        "userGroupIds": [],
        # KQI additions: the tenant quota (None: no limit)
        "limitCpu": t.limit_cpu,
        "limitMemory": t.limit_memory,
        "limitGpu": t.limit_gpu,
    }


class TenantManager:
    """Creates, edits and removes tenants on both sides: hub group + roles, and kqi DB."""

    def __init__(self, db: Session, hub):
        self.db = db
        self.hub = hub

    def get(self, tenant_id: int) -> Tenant:
        tenant = self.db.get(Tenant, tenant_id)
        if tenant is None:
            raise NotFoundError(f"No tenant has the id {tenant_id}.")
        return tenant

    def by_name(self, name: str) -> Tenant | None:
        return self.db.scalar(select(Tenant).where(Tenant.name == name))

    async def create(self, values: dict, actor: str, admins: list[str] | None = None) -> Tenant:
        if self.by_name(values["name"]) is not None:
            raise ConflictError(f"A tenant named {values['name']} exists already.")
        await self.hub.ensure_tenant(values["name"], admins=admins)
        tenant = Tenant(created_by=actor, modified_by=actor, **values)
        self.db.add(tenant)
        try:
            self.db.commit()
        except Exception:
            self.db.rollback()
            await self.hub.delete_tenant(values["name"])
            raise
        return tenant

    def update(self, tenant: Tenant, values: dict, actor: str) -> Tenant:
        for key, value in values.items():
            setattr(tenant, key, value)
        tenant.modified_by = actor
        tenant.modified_at = utcnow()
        self.db.commit()
        return tenant

    async def delete(self, tenant: Tenant, current_tenant: Tenant | None) -> None:
        if current_tenant is not None and tenant.id == current_tenant.id:
            raise ConflictError("You cannot delete the tenant you are working in: switch to another first.")
        await self.hub.delete_tenant(tenant.name)
        self.db.delete(tenant)
        self.db.commit()
