"""Models of the job environment (/admin/job-environment, /admin/tenants/{id}/job-environment,
/tenant/job-environment): extra environment variables and the network mode of every job
and notebook container.

domain/job_environment.py keeps the rules (variable names, the platform's reserved names,
sizes); a field left out keeps its value. Unknown fields are refused (a misspelt networkMode
would otherwise be dropped in silence), unlike the API's other bodies.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, ValidationError, WrapValidator

from ...domain.job_environment import MAX_NAME_LENGTH, MAX_VALUE_LENGTH, MAX_VARIABLES
from ...domain.jobs import RESERVED_ENV
from .core import ApiModel, Timestamp

NetworkMode = Literal["host", "bridge", "none"]


def _env_messages(value, handler):
    """Type errors of a variable reported on `env` itself, naming the variable."""
    try:
        return handler(value)
    except ValidationError as e:
        messages = []
        for err in e.errors(include_url=False):
            name = err["loc"][0] if err["loc"] else None
            messages.append(f"the value of {name}: {err['msg']}" if name is not None else err["msg"])
        raise ValueError("; ".join(messages)) from None


#: the variables; what the domain checks besides the types (names, reserved names, sizes) is in the schema
Env = Annotated[dict[str, str], WrapValidator(_env_messages), Field(json_schema_extra={
    "maxProperties": MAX_VARIABLES,
    "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": MAX_NAME_LENGTH,
                      "not": {"enum": sorted(RESERVED_ENV)}},
    "additionalProperties": {"type": "string", "maxLength": MAX_VALUE_LENGTH, "pattern": "^[^\\x00]*$"},
})]

ENV_HELP = ("Variable name → value. Names are letters, digits and '_', not starting with a digit; the"
            " platform's own (KQI_TOKEN, TRAINING_ID, ...) are refused. At most 100.")


class JobEnvironmentOutput(ApiModel):
    env: dict[str, str]
    networkMode: NetworkMode


class SystemJobEnvironmentInput(ApiModel):
    """PUT /admin/job-environment"""

    model_config = ConfigDict(extra="forbid")

    env: Env = Field(None, description=ENV_HELP)
    networkMode: NetworkMode = Field(None, description="The network of the containers.")
    # what GET answers besides may be sent back; it is ignored
    effective: dict | None = None
    modifiedAt: str | None = None
    modifiedBy: str | None = None


class TenantJobEnvironmentInput(ApiModel):
    """PUT /admin/tenants/{id}/job-environment and /tenant/job-environment; an override that sets
    nothing is removed."""

    model_config = ConfigDict(extra="forbid")

    env: Env = Field(None, description=ENV_HELP + " Merged over the system's.")
    networkMode: NetworkMode | None = Field(None, description="Replaces the system's; null keeps the system's.")
    effective: dict | None = None
    modifiedAt: str | None = None
    modifiedBy: str | None = None


class SystemJobEnvironmentOutput(ApiModel):
    env: dict[str, str]
    networkMode: NetworkMode
    modifiedAt: Timestamp | None
    modifiedBy: str | None


class TenantJobEnvironmentOutput(ApiModel):
    tenantId: int
    env: dict[str, str] = Field(description="The tenant's own variables")
    networkMode: NetworkMode | None = Field(description="null: the system's")
    modifiedAt: Timestamp | None
    modifiedBy: str | None
    effective: JobEnvironmentOutput = Field(description="What the tenant's jobs get")
