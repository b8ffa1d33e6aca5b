"""The job environment: extra environment variables and the network mode that every job
(training, inference, preprocessing) and notebook container gets, so that a company's
package index or HTTP proxy (PIP_INDEX_URL, PIP_CERT, HTTPS_PROXY, ...) works inside jobs.

A system administrator sets it for the whole system; a tenant may override it (set by a
system administrator or by the tenant's administrator):

- the tenant's variables are merged over the system's (same name: the tenant's value);
- the tenant's network mode, when set, replaces the system's.

`effective_job_environment(db, tenant)` is what the job engine and the notebook spawner
ask for. The platform's own variables (KQI_TOKEN, KQI_SERVER, TRAINING_ID, ...) cannot be
given here: the same reserved names as for a job's own variables (domain/jobs.py).

Values may hold secrets (a proxy URL with a password): messages name variables, never
their values.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from ..db.models import Tenant, utcnow
from ..db.models_job_environment import SYSTEM_ROW_ID, SystemJobEnvironment, TenantJobEnvironment
from .jobs import RESERVED_ENV
from .validation import Fields, ValidationError

NETWORK_MODES = ("host", "bridge", "none")
MAX_VARIABLES = 100
MAX_NAME_LENGTH = 256
MAX_VALUE_LENGTH = 4096
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: the fields of a PUT body; "effective" (what GET returns besides) is ignored when sent back
BODY_FIELDS = ("env", "networkMode")
IGNORED_FIELDS = ("effective", "modifiedAt", "modifiedBy")


@dataclass(frozen=True)
class JobEnvironment:
    env: dict[str, str]  # extra variables for every job/notebook container
    network: str  # one of NETWORK_MODES


DEFAULT = JobEnvironment(env={}, network="host")


# ------------------------------------------------------------------ validation
def env_errors(value: object) -> list[str]:
    """What is wrong with `value` as a set of variables ({name: value}); [] when it is fine."""
    if not isinstance(value, dict):
        return ["must be an object of environment variable names to values"]
    errors = []
    if len(value) > MAX_VARIABLES:
        errors.append(f"must have at most {MAX_VARIABLES} variables, not {len(value)}")
    for name, text in value.items():
        if not isinstance(name, str) or not NAME.fullmatch(name):
            errors.append(f"{name!r} is not a valid variable name: use letters, digits and '_',"
                          " and do not start with a digit")
        elif len(name) > MAX_NAME_LENGTH:
            errors.append(f"the name {name[:32]}... is longer than {MAX_NAME_LENGTH} characters")
        elif name in RESERVED_ENV:
            errors.append(f"{name} is set by the platform and cannot be given")
        elif not isinstance(text, str):
            errors.append(f"the value of {name} must be a string")
        elif len(text) > MAX_VALUE_LENGTH:
            errors.append(f"the value of {name} must have at most {MAX_VALUE_LENGTH} characters")
        elif "\x00" in text:
            errors.append(f"the value of {name} must not contain NUL characters")
    return errors


def network_errors(value: object, *, allow_none: bool) -> list[str]:
    """What is wrong with `value` as a network mode (None: inherit, for overrides only)."""
    if value is None and allow_none:
        return []
    if not isinstance(value, str) or value not in NETWORK_MODES:
        choices = ", ".join(NETWORK_MODES)
        return [f"must be one of {choices}" + (", or null to keep the system's" if allow_none else "")]
    return []


def read_setting(body: dict, current: tuple[dict, str | None], *, override: bool) -> tuple[dict, str | None]:
    """Check a PUT body ({"env": {...}, "networkMode": ...}) against `current` (env, network).

    A field left out keeps its current value; for an override, "networkMode": null means
    "the system's". Returns the new (env, network); raises ValidationError (nothing changed).
    """
    f = Fields(body)
    env, network = current
    for key in body:
        if key not in BODY_FIELDS and key not in IGNORED_FIELDS:
            f.error(key, "is not a field of the job environment (env, networkMode)")
    if "env" in body:
        for message in env_errors(body["env"]):
            f.error("env", message)
        if isinstance(body["env"], dict):
            env = dict(body["env"])
    if "networkMode" in body:
        for message in network_errors(body["networkMode"], allow_none=override):
            f.error("networkMode", message)
        network = body["networkMode"]
    f.done()
    return env, network


# --------------------------------------------------------------------- merging
def merge(system: JobEnvironment, env: dict[str, str] | None, network: str | None) -> JobEnvironment:
    """The system setting with a tenant's override applied (pure)."""
    return JobEnvironment(env={**system.env, **(env or {})}, network=network or system.network)


# --------------------------------------------------------------------- storage
def _tenant_id(tenant: Tenant | int | None) -> int | None:
    return tenant.id if isinstance(tenant, Tenant) else tenant


def system_job_environment(db: Session) -> JobEnvironment:
    row = db.get(SystemJobEnvironment, SYSTEM_ROW_ID)
    if row is None:  # a database made without the migrations
        return JobEnvironment(env={}, network=DEFAULT.network)
    return JobEnvironment(env=dict(row.env or {}), network=row.network)


def tenant_override(db: Session, tenant: Tenant | int) -> TenantJobEnvironment | None:
    return db.get(TenantJobEnvironment, _tenant_id(tenant))


def effective_job_environment(db: Session, tenant: Tenant | int | None) -> JobEnvironment:
    """The variables and network mode of a job or notebook container of `tenant` (a Tenant
    or its id; None: the system setting alone). Always a new object the caller may keep."""
    system = system_job_environment(db)
    row = tenant_override(db, tenant) if _tenant_id(tenant) is not None else None
    if row is None:
        return system
    return merge(system, row.env, row.network)


def set_system(db: Session, body: dict, actor: str) -> JobEnvironment:
    """Apply a PUT body to the system setting and commit; raises ValidationError first."""
    row = db.get(SystemJobEnvironment, SYSTEM_ROW_ID)
    current = (dict(row.env or {}), row.network) if row is not None else (dict(DEFAULT.env), DEFAULT.network)
    env, network = read_setting(body, current, override=False)
    if row is None:
        row = SystemJobEnvironment(id=SYSTEM_ROW_ID, created_by=actor)
        db.add(row)
    row.env, row.network = env, network
    row.modified_by, row.modified_at = actor, utcnow()
    db.commit()
    return JobEnvironment(env=dict(env), network=network)


def set_tenant_override(db: Session, tenant: Tenant, body: dict, actor: str) -> TenantJobEnvironment | None:
    """Apply a PUT body to a tenant's override and commit; raises ValidationError first.
    An override that sets nothing (no variables, no network mode) is removed."""
    row = tenant_override(db, tenant)
    current = (dict(row.env or {}), row.network) if row is not None else ({}, None)
    env, network = read_setting(body, current, override=True)
    if not env and network is None:
        if row is not None:
            db.delete(row)
            db.commit()
        return None
    if row is None:
        row = TenantJobEnvironment(tenant_id=tenant.id, created_by=actor)
        db.add(row)
    row.env, row.network = env, network
    row.modified_by, row.modified_at = actor, utcnow()
    db.commit()
    return row


# ---------------------------------------------------------------------- output
def environment_json(value: JobEnvironment) -> dict:
    return {"env": dict(value.env), "networkMode": value.network}


def system_json(db: Session) -> dict:
    row = db.get(SystemJobEnvironment, SYSTEM_ROW_ID)
    return {
        **environment_json(system_job_environment(db)),
        "modifiedAt": row.modified_at if row is not None else None,
        "modifiedBy": row.modified_by if row is not None else None,
    }


def tenant_json(db: Session, tenant: Tenant) -> dict:
    """A tenant's override ({"env", "networkMode": null when it keeps the system's}) and,
    under "effective", what its jobs get."""
    row = tenant_override(db, tenant)
    return {
        "tenantId": tenant.id,
        "env": dict(row.env or {}) if row is not None else {},
        "networkMode": row.network if row is not None else None,
        "modifiedAt": row.modified_at if row is not None else None,
        "modifiedBy": row.modified_by if row is not None else None,
        "effective": environment_json(effective_job_environment(db, tenant)),
    }


__all__ = [
    "DEFAULT",
    "JobEnvironment",
    "MAX_VALUE_LENGTH",
    "MAX_VARIABLES",
    "NETWORK_MODES",
    "ValidationError",
    "effective_job_environment",
    "env_errors",
    "merge",
    "network_errors",
    "read_setting",
    "set_system",
    "set_tenant_override",
    "system_json",
    "tenant_json",
]
