"""The job environment (KQI): extra environment variables and the network mode of every job
and notebook container. The system setting (/admin/job-environment, system administrators),
a tenant's override (/admin/tenants/{id}/job-environment, system administrators) and the
current tenant's override (/tenant/job-environment, its administrators).

The rules are in domain/job_environment.py. Values may hold secrets (a proxy URL with a
password): the logs name the variables, never their values.
"""
from __future__ import annotations

from ..domain import job_environment as je
from ..domain.tenants import TenantManager
from ..permissions import Access
from .base import BaseAPIHandler
from .schemas import job_environment as models
from .schemas.core import contract


class SystemJobEnvironmentHandler(BaseAPIHandler):
    """The system's job environment: {"env": {name: value}, "networkMode": "host" | "bridge" | "none"}."""

    access = {"GET": Access.SYSTEM_ADMIN, "PUT": Access.SYSTEM_ADMIN}

    @contract(response=models.SystemJobEnvironmentOutput)
    def get(self):
        """GET /admin/job-environment: the variables and network mode of every job and notebook."""
        self.write_json(je.system_json(self.db))

    @contract(body=models.SystemJobEnvironmentInput, response=models.SystemJobEnvironmentOutput)
    def put(self):
        """PUT /admin/job-environment: replace the variables and/or the network mode.

        A field left out keeps its value. Variable names are letters, digits and '_' (not
        starting with a digit); the platform's own names (KQI_TOKEN, TRAINING_ID, ...) are refused."""
        value = je.set_system(self.db, self.json_body(), self.identity.name)
        self.log.info("%s set the system job environment: network %s, variables %s", self.identity.name,
                      value.network, ", ".join(sorted(value.env)) or "none")
        self.write_json(je.system_json(self.db))


class _TenantJobEnvironment:
    def answer_put(self, tenant):
        row = je.set_tenant_override(self.db, tenant, self.json_body(), self.identity.name)
        if row is None:
            what = "removed the job environment override of"
        else:
            network = row.network or "the system's"
            what = (f"set the job environment override (network {network},"
                    f" variables {', '.join(sorted(row.env)) or 'none'}) of")
        self.log.info("%s %s tenant %s", self.identity.name, what, tenant.name)
        self.write_json(je.tenant_json(self.db, tenant))


class TenantJobEnvironmentHandler(_TenantJobEnvironment, BaseAPIHandler):
    """A tenant's override of the job environment, and what its jobs get ("effective")."""

    access = {"GET": Access.SYSTEM_ADMIN, "PUT": Access.SYSTEM_ADMIN}
    path_params = ("id",)

    @contract(response=models.TenantJobEnvironmentOutput)
    def get(self, tenant_id):
        """GET /admin/tenants/{id}/job-environment: the tenant's override and the effective setting.

        `networkMode` null: the tenant keeps the system's network mode."""
        tenant = TenantManager(self.db, self.kqi.hub).get(self.int_path(tenant_id))
        self.write_json(je.tenant_json(self.db, tenant))

    @contract(body=models.TenantJobEnvironmentInput, response=models.TenantJobEnvironmentOutput)
    def put(self, tenant_id):
        """PUT /admin/tenants/{id}/job-environment: set the tenant's override.

        Its variables are merged over the system's; its network mode, unless null, replaces the
        system's. A field left out keeps its value; an override that sets nothing is removed."""
        tenant = TenantManager(self.db, self.kqi.hub).get(self.int_path(tenant_id))
        self.answer_put(tenant)


class CurrentTenantJobEnvironmentHandler(_TenantJobEnvironment, BaseAPIHandler):
    """The current tenant's override of the job environment, for its administrators."""

    access = {"GET": Access.TENANT_ADMIN, "PUT": Access.TENANT_ADMIN}

    @contract(response=models.TenantJobEnvironmentOutput)
    def get(self):
        """GET /tenant/job-environment: the current tenant's override and the effective setting."""
        self.write_json(je.tenant_json(self.db, self.tenant))

    @contract(body=models.TenantJobEnvironmentInput, response=models.TenantJobEnvironmentOutput)
    def put(self):
        """PUT /tenant/job-environment: set the current tenant's override.

        Its variables are merged over the system's; its network mode, unless null, replaces the
        system's. A field left out keeps its value; an override that sets nothing is removed."""
        self.answer_put(self.tenant)


default_handlers = [
    (r"/admin/job-environment", SystemJobEnvironmentHandler),
    (r"/admin/tenants/([^/]+)/job-environment", TenantJobEnvironmentHandler),
    (r"/tenant/job-environment", CurrentTenantJobEnvironmentHandler),
]
