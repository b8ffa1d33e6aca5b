"""Request and response models of /account/tokens: personal access tokens (issue 16).

A personal access token is a hub API token bound to one tenant (the scopes a `kqi account login`
token has there), made for scripts and the official CLI/SDK; KAMONOHASHI's AccessTokenSetting.
"""
from __future__ import annotations

from pydantic import Field

from .core import ApiModel, Id, Text, Timestamp


class PersonalTokenCreateInput(ApiModel):
    """POST /account/tokens"""

    tenantId: Id = Field(description="The tenant the token acts in (one of the caller's).")
    note: Text(max_length=100) | None = Field(None, description="What the token is for (shown in the list).")
    expiresInDays: int = Field(ge=1, le=365, description="Days until the token stops working (1 to 365).")


class PersonalTokenOutput(ApiModel):
    """A personal access token as listed: never the token itself."""

    id: str = Field(description="The hub's id of the token (for revoking it).")
    note: str | None
    tenantId: Id | None = Field(description="null when the tenant was deleted since")
    tenantName: str | None
    createdAt: Timestamp | None
    lastUsedAt: Timestamp | None
    expiresAt: Timestamp | None


class PersonalTokenCreatedOutput(PersonalTokenOutput):
    """The answer to a creation: the only time the token is shown."""

    token: str = Field(description="The token (shown this once; it is not kept in a readable form).")
