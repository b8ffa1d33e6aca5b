"""Hub roles that make a hub group a KQI tenant.

A tenant is a hub group. Two roles per tenant carry its permissions as custom scopes
with a group filter, which the kqi service reads from every token it sees:

- `kqi-user.<tenant>`, granted to the group: `custom:kqi:user!group=<tenant>` and
  access to the kqi service;
- `kqi-tenant-admin.<tenant>`, granted to chosen users: `custom:kqi:tenant-admin!group=<tenant>`
  as well.

JupyterHub has no REST API for roles, so this handler (served by the hub because the
authenticator registers it) creates and removes them. The roles are marked as managed
by the authenticator, which keeps them across hub restarts.
"""
from __future__ import annotations

import json

from jupyterhub import orm, roles
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

USER_ROLE_PREFIX = "kqi-user."
ADMIN_ROLE_PREFIX = "kqi-tenant-admin."


def tenant_role_specs(tenant: str, service_name: str) -> tuple[dict, dict]:
    """The two role definitions of a tenant (pure; used by the handler and the tests)."""
    access = f"access:services!service={service_name}"
    user_role = {
        "name": USER_ROLE_PREFIX + tenant,
        "description": f"Member of the KQI tenant {tenant}",
        "scopes": [f"custom:kqi:user!group={tenant}", access],
        "managed_by_auth": True,
    }
    admin_role = {
        "name": ADMIN_ROLE_PREFIX + tenant,
        "description": f"Administrator of the KQI tenant {tenant}",
        "scopes": [
            f"custom:kqi:tenant-admin!group={tenant}",
            f"custom:kqi:user!group={tenant}",
            access,
        ],
        "managed_by_auth": True,
    }
    return user_role, admin_role


class TenantRolesAPIHandler(APIHandler):
    """GET/PUT/DELETE /hub/api/kqi/tenants/<group>

    PUT {"admins": ["name", ...]} makes sure the group and both roles exist and, when
    `admins` is given, makes exactly those users the tenant's administrators.
    """

    def _model(self, tenant):
        group = orm.Group.find(self.db, tenant)
        admin_role = orm.Role.find(self.db, ADMIN_ROLE_PREFIX + tenant)
        if group is None or admin_role is None:
            raise web.HTTPError(404, f"No tenant {tenant}")
        return {
            "name": tenant,
            "users": sorted(u.name for u in group.users),
            "admins": sorted(u.name for u in admin_role.users),
        }

    @needs_scope("admin:groups")
    def get(self, tenant):
        self.write(json.dumps(self._model(tenant)))

    @needs_scope("admin:groups")
    async def put(self, tenant):
        self._require_admin_users_scope()
        body = self.get_json_body() or {}
        if not isinstance(body, dict):
            raise web.HTTPError(400, "The body must be a JSON object")
        admins = body.get("admins")
        if admins is not None and (
            not isinstance(admins, list) or not all(isinstance(a, str) for a in admins)
        ):
            raise web.HTTPError(400, "admins must be a list of user names")
        admin_users = []
        for name in admins or []:
            user = orm.User.find(self.db, name)
            if user is None:
                raise web.HTTPError(400, f"No user {name}")
            admin_users.append(user)

        group = orm.Group.find(self.db, tenant)
        created = group is None
        if created:
            group = orm.Group(name=tenant)
            self.db.add(group)
            self.db.commit()
        service_name = self.authenticator.kqi_service_name
        user_spec, admin_spec = tenant_role_specs(tenant, service_name)
        for spec in (user_spec, admin_spec):
            roles.create_role(self.db, spec, commit=False)
        self.db.commit()
        user_role = orm.Role.find(self.db, user_spec["name"])
        if group not in user_role.groups:
            roles.grant_role(self.db, group, rolename=user_role.name, managed=True)
        if admins is not None:
            admin_role = orm.Role.find(self.db, admin_spec["name"])
            for user in list(admin_role.users):
                if user not in admin_users:
                    roles.strip_role(self.db, user, rolename=admin_role.name, managed=True)
            for user in admin_users:
                if user not in admin_role.users:
                    roles.grant_role(self.db, user, rolename=admin_role.name, managed=True)
        self.db.commit()
        self.set_status(201 if created else 200)
        self.write(json.dumps(self._model(tenant)))

    @needs_scope("admin:groups")
    def delete(self, tenant):
        self._require_admin_users_scope()
        found = False
        for prefix in (USER_ROLE_PREFIX, ADMIN_ROLE_PREFIX):
            if orm.Role.find(self.db, prefix + tenant) is not None:
                roles.delete_role(self.db, prefix + tenant)
                found = True
        group = orm.Group.find(self.db, tenant)
        if group is not None:
            self.db.delete(group)
            found = True
        self.db.commit()
        if not found:
            raise web.HTTPError(404, f"No tenant {tenant}")
        self.set_status(204)

    def _require_admin_users_scope(self):
        # granting tenant-admin roles to users changes what users may do
        if "admin:users" not in self.expanded_scopes:
            raise web.HTTPError(403, "Changing tenant roles needs the admin:users scope")
