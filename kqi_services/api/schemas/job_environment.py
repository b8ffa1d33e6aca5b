"""Models of the job environment (/admin/job-environment, /admin/tenants/{id}/job-environment,
/tenant/job-environment): extra environment variables and the network mode of every job
and notebook container.

domain/job_environment.py keeps the rules (variable names, the platform's reserved names,
sizes); a field left out keeps its value.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

try:
    from .core import ApiModel
except ImportError:  # until the shared core lands
    from pydantic import BaseModel as ApiModel

NetworkMode = Literal["host", "bridge", "none"]
ENV_HELP = ("Variable name → value. Names are letters, digits and '_', not starting with a digit; the"
            " platform's own (KQI_TOKEN, TRAINING_ID, ...) are refused. At most 100.")


class JobEnvironmentOutput(ApiModel):
    env: dict[str, str]
    networkMode: NetworkMode


class SystemJobEnvironmentInput(ApiModel):
    """PUT /admin/job-environment"""

    env: dict[str, str] = Field(None, max_length=100, description=ENV_HELP)
    networkMode: NetworkMode = Field(None, description="The network of the containers.")
    # what GET answers besides may be sent back; it is ignored
    effective: dict | None = None
    modifiedAt: str | None = None
    modifiedBy: str | None = None


class TenantJobEnvironmentInput(ApiModel):
    """PUT /admin/tenants/{id}/job-environment and /tenant/job-environment; an override that sets
    nothing is removed."""

    env: dict[str, str] = Field(None, max_length=100, description=ENV_HELP + " Merged over the system's.")
    networkMode: NetworkMode | None = Field(None, description="Replaces the system's; null keeps the system's.")
    effective: dict | None = None
    modifiedAt: str | None = None
    modifiedBy: str | None = None


class SystemJobEnvironmentOutput(ApiModel):
    env: dict[str, str]
    networkMode: NetworkMode
    modifiedAt: datetime | None
    modifiedBy: str | None


class TenantJobEnvironmentOutput(ApiModel):
    tenantId: int
    env: dict[str, str] = Field(description="The tenant's own variables")
    networkMode: NetworkMode | None = Field(description="null: the system's")
    modifiedAt: datetime | None
    modifiedBy: str | None
    effective: JobEnvironmentOutput = Field(description="What the tenant's jobs get")
