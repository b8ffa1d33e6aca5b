"""Models of /admin/users (system administrators) and /tenant/users (tenant administrators).

Users, passwords and memberships live in the hub; domain/users.py keeps the rules that
need it (names that are free, tenants that exist, one default tenant, not removing oneself).
"""
from __future__ import annotations

from pydantic import Field

from .core import ApiModel, Id, pattern_message
from .misc import RowId

USER_NAME_HELP = "1-64 lower-case letters, digits, '.', '_' and '-', starting with a letter or digit."
USER_NAME_PATTERN = pattern_message(r"^[a-z0-9][a-z0-9._-]{0,63}$", "must be " + USER_NAME_HELP[:1].lower()
                                    + USER_NAME_HELP[1:-1])
#: the schema of a list the domain refuses unless empty (with its own message)
NONE = {"maxItems": 0}
PASSWORD_HELP = "At least 8 and at most 1024 characters, without white space at either end."


class UserTenantInput(ApiModel):
    """A wanted membership."""

    id: RowId = Field(description="The tenant's id.")
    isTenantAdmin: bool | None = Field(None, description="Administrator of the tenant (default false).")
    default: bool | None = Field(None, description="The user's default tenant (at most one).")


class UserCreateInput(ApiModel):
    """POST /admin/users"""

    name: str = Field(max_length=64, pattern=USER_NAME_PATTERN, description=USER_NAME_HELP)
    password: str = Field(min_length=8, max_length=1024, description=PASSWORD_HELP)
    displayName: str | None = Field(None, max_length=255)
    tenants: list[UserTenantInput] | None = Field(None, description="The user's tenants (default none).")
    systemRoles: list[int] | None = Field(None, json_schema_extra=NONE, description="Not used: system administrators"
                                                                          " are set in the hub configuration.")


class UserEditInput(ApiModel):
    """PUT /admin/users/{name}: a field left out (or tenants null) is kept."""

    displayName: str | None = Field(None, max_length=255, description="null or \"\": the user name is shown.")
    tenants: list[UserTenantInput] | None = Field(None, description="Replaces every membership.")
    systemRoles: list[int] | None = Field(None, json_schema_extra=NONE, description="Not used: system administrators"
                                                                          " are set in the hub configuration.")


class UserDisplayNameInput(ApiModel):
    """PUT /admin/users/{name}/displayName"""

    displayName: str | None = Field(None, max_length=255, description="null or \"\": the user name is shown.")


class UserPasswordInput(ApiModel):
    """PUT /admin/users/{name}/password"""

    password: str = Field(min_length=8, max_length=1024, description=PASSWORD_HELP)


class UserTenantsInput(ApiModel):
    """PUT /admin/users/{name}/tenants in the object form (the body may also be the list alone)."""

    tenants: list[UserTenantInput] = Field(description="Replaces every membership ([] removes them all).")


class TenantMemberInput(ApiModel):
    """PUT /tenant/users/{name} (the body may be left out)"""

    isTenantAdmin: bool | None = Field(None, description="Administrator of the tenant (default false).")


class AdminUserTenantOutput(ApiModel):
    id: Id
    name: str
    displayName: str
    isTenantAdmin: bool
    default: bool


class AdminUserOutput(ApiModel):
    """A user as the system administrator sees it."""

    id: Id
    name: str
    displayName: str
    serviceType: int = Field(description="KAMONOHASHI's AuthServiceType: 1, local")
    isSystemAdmin: bool
    defaultTenantId: Id | None
    tenants: list[AdminUserTenantOutput]
    createdAt: str | None = Field(description="When the hub made the user (ISO 8601, UTC)")
    lastActivity: str | None = Field(description="The hub's last activity of the user (ISO 8601, UTC)")


class TenantUserOutput(ApiModel):
    """A member as the tenant administrator sees it."""

    id: Id
    name: str
    displayName: str
    serviceType: int = Field(description="KAMONOHASHI's AuthServiceType: 1, local")
    isTenantAdmin: bool
