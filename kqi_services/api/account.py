"""Account: sign-in with the hub's authenticator, the caller's tenants, tenant switch.

Tokens are hub API tokens. `login` and `tenants/{id}/token` issue a token that holds the
scopes of one tenant, so every later call with it acts in that tenant.
"""
from __future__ import annotations

from sqlalchemy import select

from ..db.models import Tenant, UserSetting
from ..domain.validation import Fields
from ..hub_client import HubError
from ..permissions import Access, tenant_token_scopes
from .base import TENANT_COOKIE, ApiError, BaseAPIHandler
from .schemas.account import AccountOutput, DefaultTenantQuery, LoginInput, LoginOutput, SwitchTenantInput
from .schemas.core import contract

DEFAULT_EXPIRES_IN = 864000  # ten days, as KAMONOHASHI
MAX_EXPIRES_IN = 365 * 24 * 3600

#: Identity kinds whose tokens are bound to one tenant whatever they ask (permissions.job_identity,
#: permissions.notebook_identity)
BOUND_KINDS = ("job", "notebook")

ROLE_USER = {"id": 1, "name": "user", "displayName": "Tenant user", "sortOrder": 1,
             "isOrigin": True, "isCustomed": False}
ROLE_TENANT_ADMIN = {"id": 2, "name": "tenant-admin", "displayName": "Tenant administrator",
                     "sortOrder": 2, "isOrigin": True, "isCustomed": False}


def read_expires_in(f: Fields) -> int:
    return f.int("expiresIn", minimum=60, maximum=MAX_EXPIRES_IN, default=DEFAULT_EXPIRES_IN)


class AccountMixin:
    async def hub_user_tenants(self, name: str) -> tuple[dict, list[Tenant]]:
        """The hub's model of the user and the KQI tenants among its groups, by id."""
        model = await self.kqi.hub.get_user(name)
        if model is None:
            return None, []
        groups = model.get("groups") or []
        tenants = self.db.scalars(
            select(Tenant).where(Tenant.name.in_(groups)).order_by(Tenant.id)
        ).all() if groups else []
        return model, list(tenants)

    def login_output(self, token_model, name, tenant, expires_in):
        return {
            "token": token_model["token"],
            "userName": name,
            "tenantId": tenant.id if tenant else None,
            # the tenant's display name, as KAMONOHASHI's login (LoginOutputModel.TenantName) and
            # as `kqi account get` prints the selected tenant (its TenantInfo.displayName)
            "tenantName": tenant.display_name if tenant else None,
            "expiresIn": expires_in,
        }


class LoginHandler(AccountMixin, BaseAPIHandler):
    """POST /account/login {userName, password, tenantId?, expiresIn?}"""

    access = {"POST": Access.ANONYMOUS}

    @contract(body=LoginInput, response=LoginOutput, errors=(401,))
    async def post(self):
        f = Fields(self.json_body())
        name = f.str("userName", required=True, max_length=255)
        password = f.str("password", required=True, max_length=1024)
        tenant_id = f.int("tenantId", minimum=0)
        expires_in = read_expires_in(f)
        f.done()
        wrong = ApiError(401, "The user name or the password is wrong.")
        # the password first: a directory authenticator (LDAP) makes the hub user and applies the
        # directory's groups (tenants) when it checks it, so the tenants read next are current;
        # and an answer before the check would tell a stranger which names exist
        await self.check_password(name, password, wrong)
        model, tenants = await self.hub_user_tenants(name)
        if model is None:
            raise wrong
        roles = set(model.get("roles") or [])
        tenant = self.choose_tenant(name, tenants, tenant_id)
        if tenant is None and "kqi-system-admin" not in roles:
            raise ApiError(403, "You belong to no tenant yet: ask an administrator to add you to one.")
        scopes = tenant_token_scopes(roles, tenant.name if tenant else None, self.kqi.service_name)
        try:
            token = await self.kqi.hub.token_for_password(
                name, password, scopes=scopes, expires_in=expires_in,
                note=f"kqi login, tenant {tenant.name if tenant else '-'}",
            )
        except HubError as e:
            if e.status == 403:
                raise wrong
            raise ApiError(400, f"The hub refused the token: {e.message}")
        self.log.info("%s signed in to tenant %s", name, tenant.name if tenant else "-")
        self.write_json(self.login_output(token, name, tenant, expires_in))

    async def check_password(self, name, password, wrong):
        try:
            token = await self.kqi.hub.token_for_password(
                name, password, scopes=[], expires_in=60, note="kqi password check"
            )
        except HubError:
            raise wrong
        await self.kqi.hub.revoke_token(name, token["id"])

    def choose_tenant(self, name, tenants, tenant_id):
        if tenant_id is not None:
            for tenant in tenants:
                if tenant.id == tenant_id:
                    return tenant
            raise ApiError(400, f"You are not a member of a tenant with the id {tenant_id}.",
                           {"tenantId": ["not one of your tenants"]})
        if not tenants:
            return None
        default_id = self._default_tenant_for(name)
        for tenant in tenants:
            if tenant.id == default_id:
                return tenant
        return tenants[0]

    def _default_tenant_for(self, name):
        setting = self.db.scalar(select(UserSetting).where(UserSetting.name == name))
        return setting.default_tenant_id if setting else None


class SwitchTenantHandler(AccountMixin, BaseAPIHandler):
    """POST /account/tenants/{tenantId}/token {expiresIn?}: a new token for another tenant."""

    access = {"POST": Access.AUTHENTICATED}

    @contract(body=SwitchTenantInput, body_required=False, response=LoginOutput)
    async def post(self, tenant_id):
        tenant_id = self.int_path(tenant_id, "tenant id")
        f = Fields(self.json_body(required=False))
        expires_in = read_expires_in(f)
        f.done()
        model, tenants = await self.hub_user_tenants(self.identity.name)
        tenant = next((t for t in tenants if t.id == tenant_id), None)
        if tenant is None:
            raise ApiError(404, f"You are not a member of a tenant with the id {tenant_id}.")
        scopes = tenant_token_scopes(set(model.get("roles") or []), tenant.name, self.kqi.service_name)
        token = await self.kqi.hub.issue_token(
            self.identity.name, scopes=scopes, expires_in=expires_in,
            note=f"kqi switch-tenant, tenant {tenant.name}",
        )
        self.set_cookie_for_browser(tenant)
        self.write_json(self.login_output(token, self.identity.name, tenant, expires_in))

    def set_cookie_for_browser(self, tenant):
        if self.identity.session:
            self.set_cookie(TENANT_COOKIE, str(tenant.id), path=self.kqi.service_prefix, httponly=True,
                            samesite="Lax")


class AccountHandler(AccountMixin, BaseAPIHandler):
    """GET /account; PUT /account?defaultTenant=ID"""

    access = {"GET": Access.AUTHENTICATED, "PUT": Access.AUTHENTICATED}

    @contract(response=AccountOutput)
    async def get(self):
        model, tenants = await self.hub_user_tenants(self.identity.name)
        if self.identity.kind in BOUND_KINDS:
            # a job's or a notebook server's token acts in its own tenant only: the account it sees
            # lists that tenant alone (the selected one), not the owner's other memberships
            tenants = [t for t in tenants if self.tenant is not None and t.id == self.tenant.id]
        roles = set((model or {}).get("roles") or [])
        setting = self.user_setting()
        self.db.commit()

        def info(tenant):
            if tenant is None:
                return None
            tenant_roles = [ROLE_USER]
            if f"kqi-tenant-admin.{tenant.name}" in roles:
                tenant_roles.append(ROLE_TENANT_ADMIN)
            return {
                "id": tenant.id,
                "name": tenant.name,
                "displayName": tenant.display_name,
                "default": tenant.id == setting.default_tenant_id,
                "isOrigin": True,
                "roles": tenant_roles,
            }

        default = next((t for t in tenants if t.id == setting.default_tenant_id), None)
        self.write_json({
            "userId": setting.id,
            "userName": self.identity.name,
            "userDisplayName": setting.display_name or self.identity.name,
            # false where the hub's authenticator keeps the passwords elsewhere (LDAP, OIDC)
            "passwordChangeEnabled": not await self.kqi.hub.passwords_elsewhere(),
            "selectedTenant": info(self.tenant),
            "defaultTenant": info(default),
            "tenants": [info(t) for t in tenants],
            # KQI additions
            "isSystemAdmin": self.identity.system_admin,
            "passwordChangeUrl": self.kqi.hub_prefix + "change-password",
        })

    @contract(query=DefaultTenantQuery, response=AccountOutput)
    async def put(self):
        tenant_id = self.query.defaultTenant
        _, tenants = await self.hub_user_tenants(self.identity.name)
        if tenant_id not in {t.id for t in tenants}:
            raise ApiError(400, f"You are not a member of a tenant with the id {tenant_id}.",
                           {"defaultTenant": ["not one of your tenants"]})
        setting = self.user_setting()
        setting.default_tenant_id = tenant_id
        self.db.commit()
        await self.get()


default_handlers = [
    (r"/account/login", LoginHandler),
    (r"/account/tenants/([^/]+)/token", SwitchTenantHandler),
    (r"/account", AccountHandler),
]
