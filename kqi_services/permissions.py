"""Who the caller is and what they may do, read from the hub's custom scopes.

The hub grants `custom:kqi:user!group=<tenant>`, `custom:kqi:tenant-admin!group=<tenant>`
and `custom:kqi:system-admin` through roles, and passes a token's scopes to the service
verbatim; the `!group=` filters are interpreted here. A token made by `account/login` or
`account/tenants/{id}/token` carries the scopes of one tenant only, so the current tenant
travels with the token.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

SCOPE_USER = "custom:kqi:user"
SCOPE_TENANT_ADMIN = "custom:kqi:tenant-admin"
SCOPE_SYSTEM_ADMIN = "custom:kqi:system-admin"
#: hub roles (see hubext/tenant_roles.py and the hub config) as the hub's user model names them
ROLE_TENANT_ADMIN_PREFIX = "kqi-tenant-admin."
ROLE_SYSTEM_ADMIN = "kqi-system-admin"


class Access(enum.Enum):
    """What a route needs. Ordered from least to most."""

    ANONYMOUS = "anonymous"  # no credentials needed (login, version)
    AUTHENTICATED = "authenticated"  # any KQI user, also one who is in no tenant yet
    TENANT_USER = "tenant-user"  # a member of the current tenant
    TENANT_ADMIN = "tenant-admin"  # an administrator of the current tenant
    SYSTEM_ADMIN = "system-admin"  # a KQI system administrator


@dataclass
class Identity:
    name: str
    kind: str = "user"
    system_admin: bool = False
    # tenant name -> True when the caller administers it
    tenants: dict[str, bool] = field(default_factory=dict)
    token_id: str | None = None
    session: bool = False  # signed in through the browser (OAuth cookie)

    def is_member(self, tenant: str) -> bool:
        return tenant in self.tenants

    def is_tenant_admin(self, tenant: str) -> bool:
        return self.tenants.get(tenant, False)


def identity_from_model(model: dict) -> Identity:
    """Build the Identity of a hub user or service model (as HubAuth returns it)."""
    tenants: dict[str, bool] = {}
    system_admin = False
    for scope in model.get("scopes") or []:
        base, _, filt = scope.partition("!")
        if base == SCOPE_SYSTEM_ADMIN and not filt:
            system_admin = True
        elif base in (SCOPE_USER, SCOPE_TENANT_ADMIN) and filt.startswith("group="):
            tenant = filt[len("group="):]
            admin = base == SCOPE_TENANT_ADMIN
            tenants[tenant] = tenants.get(tenant, False) or admin
    return Identity(
        name=model.get("name", ""),
        kind=model.get("kind", "user"),
        system_admin=system_admin,
        tenants=tenants,
        token_id=model.get("token_id"),
        session=bool(model.get("session_id")),
    )


def tenant_token_scopes(identity_roles: set[str], tenant: str | None, service_name: str) -> list[str]:
    """Scopes of a token bound to one tenant, from the role names the hub reports for a user.

    `identity_roles` are the names of the user's own roles and of its groups' roles.
    """
    scopes = [f"access:services!service={service_name}"]
    if tenant is not None:
        scopes.append(f"{SCOPE_USER}!group={tenant}")
        if ROLE_TENANT_ADMIN_PREFIX + tenant in identity_roles:
            scopes.append(f"{SCOPE_TENANT_ADMIN}!group={tenant}")
    if ROLE_SYSTEM_ADMIN in identity_roles:
        scopes.append(SCOPE_SYSTEM_ADMIN)
    return scopes


def job_identity(owner_model: dict | None, tenant: str) -> Identity | None:
    """The Identity a running job's token (KQI_TOKEN) acts as, from the hub's model of the
    job's owner (groups and roles, as HubClient.get_user returns it).

    The owner, in the job's tenant only (never another of the owner's tenants), a tenant
    administrator there only while the owner is one, never a system administrator. None when
    the owner no longer exists or no longer belongs to the tenant (its hub group).
    """
    if owner_model is None or tenant not in (owner_model.get("groups") or []):
        return None
    admin = ROLE_TENANT_ADMIN_PREFIX + tenant in (owner_model.get("roles") or [])
    return Identity(name=owner_model.get("name", ""), kind="job", tenants={tenant: admin})


SERVER_ACCESS = "access:servers"


def notebook_servers(model: dict) -> list[str]:
    """The owner's own server names a token is a notebook server's token for, from its scopes.

    JupyterHub gives a server's own token (JUPYTERHUB_API_TOKEN) `access:servers!server=<user>/<server>`
    (its `server` role, see spawner/base.py kqi_server_token_scopes) and no wider access to servers;
    a user's own full tokens have `access:servers!user=<user>` (or `access:servers`) instead, and the
    service's sign-in none. Empty for every other token."""
    name = model.get("name", "")
    scopes = model.get("scopes") or []
    if SERVER_ACCESS in scopes or f"{SERVER_ACCESS}!user={name}" in scopes:
        return []
    prefix = f"{SERVER_ACCESS}!server={name}/"
    return sorted(scope[len(prefix):] for scope in scopes if scope.startswith(prefix) and len(scope) > len(prefix))


def notebook_identity(identity: Identity, notebook_tenants: set[str]) -> Identity:
    """The Identity of a notebook server's token: its owner in the tenant of that KQI notebook only
    (as the token's scopes allow there), never a system administrator, so no header or cookie moves
    it to another of the owner's tenants (the hub makes the token before it knows the tenant)."""
    return Identity(
        name=identity.name,
        kind="notebook",
        tenants={t: admin for t, admin in identity.tenants.items() if t in notebook_tenants},
        token_id=identity.token_id,
    )


def notebook_token_refusal(access: Access, method: str) -> str | None:
    """Why a notebook server's token may not call a route needing `access` with `method`, or None:
    like a job's token, it acts in its notebook's tenant and nothing beyond."""
    if access is Access.SYSTEM_ADMIN:
        return "A notebook server's token cannot use system administration routes."
    if access is Access.AUTHENTICATED and method.upper() not in ("GET", "HEAD"):
        return ("A notebook server's token acts in its notebook's tenant only: it cannot change its owner's"
                " account, switch tenants or get other tokens.")
    return None


def job_token_refusal(access: Access, method: str) -> str | None:
    """Why a job token may not call a route needing `access` with `method`, or None.

    A job token carries its owner's rights in the job's tenant for the job's life, never
    more: no system administration, and nothing that acts on the owner's account beyond the
    tenant (switching tenants and getting other tokens, password, settings)."""
    if access is Access.SYSTEM_ADMIN:
        return ("A job token cannot use system administration routes, even when the job's owner"
                " is a system administrator.")
    if access is Access.AUTHENTICATED and method.upper() not in ("GET", "HEAD"):
        return ("A job token acts in its job's tenant only: it cannot change its owner's account,"
                " switch tenants or get other tokens.")
    return None


def allowed(access: Access, identity: Identity | None, tenant: str | None) -> bool:
    """The rule every route applies (pure, so the tests can enumerate it)."""
    if access is Access.ANONYMOUS:
        return True
    if identity is None:
        return False
    if access is Access.AUTHENTICATED:
        return True
    if access is Access.SYSTEM_ADMIN:
        return identity.system_admin
    if tenant is None:
        return False
    if access is Access.TENANT_ADMIN:
        return identity.is_tenant_admin(tenant)
    return identity.is_member(tenant)
