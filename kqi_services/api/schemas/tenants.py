"""Request and response models of /admin/tenants and /tenant.

Field names are KAMONOHASHI's (TenantApiModels* of kamonohashi-sdk 4.0.2); the quota
fields are KQI additions. The model checks the shape of a body (types, lengths, the name
pattern); domain/tenants.py keeps the rules that need the database (ids that exist, a
default among the given ids, reserved names).
"""
from __future__ import annotations

from pydantic import Field

from ...domain.tenants import TENANT_NAME_HELP
from .core import NAME_PATTERN, ApiModel, Id, Timestamp, pattern_message
from .misc import Count, RowId

TENANT_NAME_PATTERN = pattern_message(r"^[a-z]([-a-z0-9]*[a-z0-9])?$", TENANT_NAME_HELP)
UNIQUE = {"uniqueItems": True}


def _ids(description: str, required: bool = True):
    return Field(... if required else None, json_schema_extra=UNIQUE, description=description)


class TenantFieldsInput(ApiModel):
    """The fields a system administrator sets on a tenant (create and edit)."""

    displayName: str = Field(min_length=1, max_length=128, pattern=NAME_PATTERN,
                             description="The name shown to people.")
    gitIds: list[RowId] = _ids("The git servers the tenant may use.")
    defaultGitId: RowId | None = Field(None, description="One of gitIds (default: the first).")
    registryIds: list[RowId] = _ids("The container registries the tenant may use.")
    defaultRegistryId: RowId | None = Field(None, description="One of registryIds (default: the first).")
    storageId: RowId = Field(description="The storage endpoint of the tenant's files.")
    availableInfiniteTimeNotebook: bool | None = Field(
        None, description="Whether notebooks of the tenant may run without a time limit (default false).")
    limitCpu: float | None = Field(None, ge=0, description="KQI: the tenant's CPU quota (null or 0: no limit).")
    limitMemory: float | None = Field(None, ge=0, description="KQI: the tenant's memory quota in GiB"
                                                              " (null or 0: no limit).")
    limitGpu: Count | None = Field(None, description="KQI: the tenant's GPU quota (null or 0: no limit).")
    userGroupIds: list[RowId] | None = Field(
        None, json_schema_extra={"maxItems": 0},
        description="KAMONOHASHI's LDAP user groups: not used (members are the hub group's), so only an"
                    " empty list is accepted.")


class TenantCreateInput(TenantFieldsInput):
    """POST /admin/tenants"""

    tenantName: str = Field(max_length=128, pattern=TENANT_NAME_PATTERN,
                            description="The tenant's name (the hub group): lower-case letters, digits and"
                                        " '-', starting with a letter; not kqi-* or kube-*.")


class TenantEditInput(TenantFieldsInput):
    """PUT /admin/tenants/{id}"""


class CurrentTenantEditInput(ApiModel):
    """PUT /tenant: what a tenant administrator may change; a field left out keeps its value."""

    displayName: str = Field(None, min_length=1, max_length=128, pattern=NAME_PATTERN,
                             description="The name shown to people.")
    defaultGitId: RowId | None = Field(None, description="One of the tenant's git servers.")
    defaultRegistryId: RowId | None = Field(None, description="One of the tenant's registries.")


class TenantIndexOutput(ApiModel):
    id: Id
    name: str
    displayName: str
    storagePath: str
    createdAt: Timestamp
    createdBy: str | None
    modifiedAt: Timestamp
    modifiedBy: str | None


class TenantDetailsOutput(TenantIndexOutput):
    gitIds: list[Id]
    defaultGitId: Id | None
    registryIds: list[Id]
    defaultRegistryId: Id | None
    storageId: Id | None
    availableInfiniteTimeNotebook: bool
    userGroupIds: list[Id]
    limitCpu: float | None = Field(description="KQI: the CPU quota (null: no limit)")
    limitMemory: float | None = Field(description="KQI: the memory quota in GiB (null: no limit)")
    limitGpu: int | None = Field(description="KQI: the GPU quota (null: no limit)")


class TenantDeleteOutput(ApiModel):
    containerWarnMsg: str | None
