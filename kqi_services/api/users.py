"""Users: /admin/users (system administrators) and /tenant/users (the current tenant's
administrators).

Users, passwords and memberships live in the hub; see domain/users.py for how a change
that takes several hub calls is made all-or-nothing.
"""
from __future__ import annotations

from ..domain.user_settings import check_new_password
from ..domain.users import HubStepFailed, UserManager, read_new_user, read_tenants_body, read_user_edit
from ..domain.validation import Fields
from ..permissions import Access
from .base import ApiError, BaseAPIHandler
from .schemas.core import contract
from .schemas.users import (
    AdminUserOutput,
    TenantMemberInput,
    TenantUserOutput,
    UserCreateInput,
    UserDisplayNameInput,
    UserEditInput,
    UserPasswordInput,
    UserTenantInput,
    UserTenantsInput,
)

#: a change that takes several hub calls answers 409 or 502 when one fails (domain/users.py HubChanges)
HUB_STEPS = (409, 502)


class UsersAPIHandler(BaseAPIHandler):
    @property
    def users(self) -> UserManager:
        return UserManager(self.db, self.kqi.hub)

    def _handle_request_exception(self, e):
        if isinstance(e, HubStepFailed) and not self._finished:
            level = self.log.error if e.status >= 500 else self.log.info
            level("%d %s %s: %s", e.status, self.request.method, self.request.path, e)
            error = ApiError(e.status, str(e))
            self.send_error(e.status, exc_info=(type(error), error, None))
            return
        super()._handle_request_exception(e)


# ------------------------------------------------------------------ system administrator
class UserListHandler(UsersAPIHandler):
    """GET /admin/users; POST /admin/users {name*, password*, displayName, tenants: [{id, isTenantAdmin}]}"""

    access = Access.SYSTEM_ADMIN

    @contract(response=list[AdminUserOutput], paged=True)
    async def get(self):
        # one page, sorted, paged and counted by the hub; without perPage a page of 1000 (or_per_page)
        self.write_json(self.paginate(await self.users.list_page(self.page_request())))

    @contract(body=UserCreateInput, response=AdminUserOutput, status=201, errors=HUB_STEPS)
    async def post(self):
        new = read_new_user(self.json_body(), self.db)
        row = await self.users.create(new)
        self.log.info("%s created the user %s in tenants %s", self.identity.name, new.name,
                      sorted(new.tenants.admin_by_tenant))
        self.write_json(row, status=201)


class UserHandler(UsersAPIHandler):
    """GET/PUT/DELETE /admin/users/{name}; PUT takes {displayName?, tenants?}."""

    access = Access.SYSTEM_ADMIN

    @contract(response=AdminUserOutput)
    async def get(self, name):
        self.write_json(await self.users.row(name))

    @contract(body=UserEditInput, response=AdminUserOutput, errors=HUB_STEPS)
    async def put(self, name):
        changes, choice = read_user_edit(self.json_body(), self.db)
        row = await self.users.edit(name, changes, choice)
        self.log.info("%s edited the user %s", self.identity.name, name)
        self.write_json(row)

    @contract(response=None, status=204, errors=HUB_STEPS)
    async def delete(self, name):
        await self.users.delete(name, self.identity.name)
        self.log.info("%s deleted the user %s", self.identity.name, name)
        self.no_content()


class UserDisplayNameHandler(UsersAPIHandler):
    """PUT /admin/users/{name}/displayName {displayName}"""

    access = {"PUT": Access.SYSTEM_ADMIN}

    @contract(body=UserDisplayNameInput, response=AdminUserOutput)
    async def put(self, name):
        changes, _ = read_user_edit({"displayName": self.json_body().get("displayName")}, self.db)
        self.write_json(await self.users.edit(name, changes, None))


class UserPasswordHandler(UsersAPIHandler):
    """PUT /admin/users/{name}/password {password}"""

    access = {"PUT": Access.SYSTEM_ADMIN}

    @contract(body=UserPasswordInput, response=None, status=204)
    async def put(self, name):
        password = check_new_password(self.json_body().get("password"))
        await self.users.set_password(name, password)
        self.log.info("%s set the password of %s", self.identity.name, name)
        self.no_content()


class UserTenantsHandler(UsersAPIHandler):
    """PUT /admin/users/{name}/tenants [{id, isTenantAdmin, default?}]: replaces the memberships."""

    access = {"PUT": Access.SYSTEM_ADMIN}

    @contract(body=list[UserTenantInput] | UserTenantsInput, response=AdminUserOutput, errors=HUB_STEPS)
    async def put(self, name):
        # a list [{id, isTenantAdmin, default}] or {"tenants": [...]}
        choice = read_tenants_body(self.body_data(), self.db)
        row = await self.users.replace_tenants(name, choice)
        self.log.info("%s set the tenants of %s to %s", self.identity.name, name,
                      sorted(choice.admin_by_tenant))
        self.write_json(row)


# ------------------------------------------------------------------ tenant administrator
class TenantUserListHandler(UsersAPIHandler):
    """GET /tenant/users: the members of the current tenant."""

    access = {"GET": Access.TENANT_ADMIN}

    @contract(response=list[TenantUserOutput], paged=True)
    async def get(self):
        self.write_json(self.paginate(await self.users.tenant_page(self.tenant, self.page_request())))


class TenantUserHandler(UsersAPIHandler):
    """GET/PUT/DELETE /tenant/users/{name}; PUT {isTenantAdmin} adds an existing user or
    changes its administrator flag."""

    access = Access.TENANT_ADMIN

    @contract(response=TenantUserOutput)
    async def get(self, name):
        self.write_json(await self.users.tenant_row(self.tenant, name))

    @contract(body=TenantMemberInput, body_required=False, response=TenantUserOutput, errors=HUB_STEPS)
    async def put(self, name):
        f = Fields(self.json_body(required=False))
        is_admin = f.bool("isTenantAdmin", default=False)
        f.done()
        row = await self.users.put_tenant_member(self.tenant, name, is_admin, self.identity.name)
        self.log.info("%s set %s as %s of tenant %s", self.identity.name, name,
                      "administrator" if is_admin else "member", self.tenant.name)
        self.write_json(row)

    @contract(response=None, status=204, errors=HUB_STEPS)
    async def delete(self, name):
        await self.users.remove_tenant_member(self.tenant, name, self.identity.name)
        self.log.info("%s removed %s from tenant %s", self.identity.name, name, self.tenant.name)
        self.no_content()


default_handlers = [
    (r"/admin/users", UserListHandler),
    (r"/admin/users/([^/]+)", UserHandler),
    (r"/admin/users/([^/]+)/displayName", UserDisplayNameHandler),
    (r"/admin/users/([^/]+)/password", UserPasswordHandler),
    (r"/admin/users/([^/]+)/tenants", UserTenantsHandler),
    (r"/tenant/users", TenantUserListHandler),
    (r"/tenant/users/([^/]+)", TenantUserHandler),
]
