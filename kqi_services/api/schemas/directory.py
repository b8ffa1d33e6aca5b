"""Request and response models of the directory routes (issue 16): /admin/directory/sync."""
from __future__ import annotations

from pydantic import Field

from .core import ApiModel, Id


class StillRunning(ApiModel):
    """A notebook or job of a user in a tenant they just left, still running there."""

    kind: str = Field(description="notebook, training, inference or preprocessing")
    id: Id = Field(description="the id the tenant sees (its display id)")
    name: str
    status: str
    tenantId: Id
    tenantName: str


class SyncedUser(ApiModel):
    name: str
    displayName: str | None
    groups: list[str] = Field(description="the user's directory groups")
    added: list[str] = Field(description="tenants the user joined")
    removed: list[str] = Field(description="tenants the user left")
    adminAdded: list[str]
    adminRemoved: list[str]
    missingTenants: list[str] = Field(description="mapped tenants that do not exist (make them first)")
    created: bool = Field(description="the hub user was made by this sync")
    inDirectory: bool = Field(description="false: a hub user the directory does not know (mapped tenants removed)")
    stillRunning: list[StillRunning] = Field(description="their notebooks and jobs still running in the tenants they left")


class DirectorySyncOutput(ApiModel):
    users: list[SyncedUser]


class DirectorySyncInfoOutput(ApiModel):
    available: bool = Field(description="the hub's authenticator reads a directory (LDAP): Sync now works")
