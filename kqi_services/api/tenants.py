"""Tenants: /admin/tenants (system administrators) and /tenant (the current tenant)."""
from __future__ import annotations

from sqlalchemy import select

from ..db.models import Tenant
from ..domain.paging import fetch_page
from ..domain.tenants import TenantManager, read_tenant_fields, tenant_details, tenant_index
from ..permissions import Access
from .base import BaseAPIHandler
from .schemas.core import contract
from .schemas.tenants import (
    CurrentTenantEditInput,
    TenantCreateInput,
    TenantDeleteOutput,
    TenantDetailsOutput,
    TenantEditInput,
    TenantIndexOutput,
)


class TenantListHandler(BaseAPIHandler):
    access = Access.SYSTEM_ADMIN

    @contract(response=list[TenantIndexOutput], paged=True)
    def get(self):
        page = fetch_page(self.db, select(Tenant), [Tenant.id], self.page_request())
        self.write_json([tenant_index(t) for t in self.paginate(page)])

    @contract(body=TenantCreateInput, response=TenantIndexOutput, status=201, errors=(409,))
    async def post(self):
        values = read_tenant_fields(self.json_body(), self.db, creating=True)
        tenant = await TenantManager(self.db, self.kqi.hub).create(values, self.identity.name)
        self.log.info("%s created tenant %s (%d)", self.identity.name, tenant.name, tenant.id)
        self.write_json(tenant_index(tenant), status=201)


class TenantHandler(BaseAPIHandler):
    access = Access.SYSTEM_ADMIN

    @contract(response=TenantDetailsOutput)
    def get(self, tenant_id):
        tenant = TenantManager(self.db, self.kqi.hub).get(self.int_path(tenant_id))
        self.write_json(tenant_details(tenant))

    @contract(body=TenantEditInput, response=TenantIndexOutput)
    def put(self, tenant_id):
        manager = TenantManager(self.db, self.kqi.hub)
        tenant = manager.get(self.int_path(tenant_id))
        values = read_tenant_fields(self.json_body(), self.db, creating=False)
        manager.update(tenant, values, self.identity.name)
        self.write_json(tenant_index(tenant))

    @contract(response=TenantDeleteOutput, errors=(409,))
    async def delete(self, tenant_id):
        manager = TenantManager(self.db, self.kqi.hub)
        tenant = manager.get(self.int_path(tenant_id))
        await manager.delete(tenant, self.tenant)
        self.log.info("%s deleted tenant %s", self.identity.name, tenant.name)
        self.write_json({"containerWarnMsg": None})


class CurrentTenantHandler(BaseAPIHandler):
    """GET/PUT /tenant: the tenant administrator's view of the current tenant."""

    access = {"GET": Access.TENANT_ADMIN, "PUT": Access.TENANT_ADMIN}

    @contract(response=TenantDetailsOutput)
    def get(self):
        self.write_json(tenant_details(self.tenant))

    @contract(body=CurrentTenantEditInput, response=TenantDetailsOutput)
    def put(self):
        # a tenant administrator may rename the tenant and choose its defaults among the
        # git servers and registries that the system administrator assigned
        body = self.json_body()
        current = tenant_details(self.tenant)
        merged = {**current, **{k: body[k] for k in ("displayName", "defaultGitId", "defaultRegistryId")
                                if k in body}}
        values = read_tenant_fields(merged, self.db, creating=False)
        TenantManager(self.db, self.kqi.hub).update(self.tenant, values, self.identity.name)
        self.write_json(tenant_details(self.tenant))


default_handlers = [
    (r"/admin/tenants", TenantListHandler),
    (r"/admin/tenants/([^/]+)", TenantHandler),
    (r"/tenant", CurrentTenantHandler),
]
