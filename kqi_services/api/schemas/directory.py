"""Request and response models of the directory routes (issue 16): /admin/directory/sync and
/admin/directory/orphans."""
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


class Orphan(ApiModel):
    """A running or queued notebook, job or TensorBoard whose owner is no longer a member of its tenant."""

    kind: str = Field(description="notebook, training, inference, preprocessing or tensorboard (of the training `id`)")
    id: Id = Field(description="the id the tenant sees (its display id; a TensorBoard's: its training's)")
    name: str
    status: str = Field(description="Running, Pending (a notebook starting) or Queued; a TensorBoard: Running")
    tenantId: Id
    tenantName: str
    owner: str = Field(description="who made it (who started it, for a TensorBoard)")
    ownerExists: bool = Field(description="false: the hub no longer has this user at all")


class DirectoryOrphansOutput(ApiModel):
    items: list[Orphan] = Field(description="by tenant, owner, kind and id")
