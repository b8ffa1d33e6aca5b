"""Request and response models of /account: sign-in, tenant switch, the caller's account.

Field names are KAMONOHASHI's (AccountApiModels* of kamonohashi-sdk 4.0.2); KQI additions
are marked. The domain rules (password check, membership) stay in api/account.py.
"""
from __future__ import annotations

from pydantic import Field

from .core import NAME_PATTERN, ApiModel, Id
from .misc import RowId



def _expires_in():
    """KAMONOHASHI's token lifetime, with the bounds api/account.py keeps (60 s .. one year)."""
    return Field(None, ge=60, le=365 * 24 * 3600,
                 description="The token's lifetime in seconds (default 864000, ten days).")


class LoginInput(ApiModel):
    """POST /account/login"""

    userName: str = Field(min_length=1, max_length=255, pattern=NAME_PATTERN, description="The user name.")
    password: str = Field(min_length=1, pattern=NAME_PATTERN, description="The user's password.")
    tenantId: RowId | None = Field(None, description="The tenant to sign in to (default: the"
                                                                      " user's default tenant, else the first).")
    expiresIn: int | None = _expires_in()


class SwitchTenantInput(ApiModel):
    """POST /account/tenants/{tenantId}/token (the body may be left out)"""

    expiresIn: int | None = _expires_in()


class LoginOutput(ApiModel):
    """A new hub API token bound to one tenant."""

    token: str
    userName: str
    tenantId: Id | None = Field(description="null for a system administrator who belongs to no tenant")
    tenantName: str | None
    expiresIn: int


class RoleInfo(ApiModel):
    id: Id
    name: str
    displayName: str
    sortOrder: int
    isOrigin: bool
    isCustomed: bool


class AccountTenantInfo(ApiModel):
    id: Id
    name: str
    displayName: str
    default: bool
    isOrigin: bool
    roles: list[RoleInfo]


class AccountOutput(ApiModel):
    """GET/PUT /account"""

    userId: Id
    userName: str
    userDisplayName: str
    passwordChangeEnabled: bool = Field(description="false where the hub's authenticator keeps the passwords"
                                                    " in a directory (LDAP, OIDC): change them there")
    selectedTenant: AccountTenantInfo | None
    defaultTenant: AccountTenantInfo | None
    tenants: list[AccountTenantInfo]
    isSystemAdmin: bool = Field(description="KQI: the caller is a system administrator")
    passwordChangeUrl: str = Field(description="KQI: the hub page that changes the password")


class DefaultTenantQuery(ApiModel):
    """PUT /account?defaultTenant=ID"""

    defaultTenant: RowId = Field(description="The id of one of the caller's tenants.")
