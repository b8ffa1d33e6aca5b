"""The job environment: extra environment variables and the network mode of every job and
notebook container, set for the whole system (one row) and overridden per tenant.

The rules (validation, merging) are in domain/job_environment.py. Values may hold secrets
(a proxy URL with a password): they are stored as given and never logged.
"""
from __future__ import annotations

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .models import AuditMixin, Base

#: the id of the one row of `system_job_environment`
SYSTEM_ROW_ID = 1


class SystemJobEnvironment(AuditMixin, Base):
    """The system setting: one row (id 1), made by the migration."""

    __tablename__ = "system_job_environment"
    __table_args__ = (CheckConstraint(f"id = {SYSTEM_ROW_ID}", name="ck_system_job_environment_one_row"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    env: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)  # name -> value
    network: Mapped[str] = mapped_column(String(16), nullable=False, default="host")


class TenantJobEnvironment(AuditMixin, Base):
    """A tenant's override: its variables are merged over the system's; its network mode,
    when not NULL, replaces the system's. No row: the tenant overrides nothing."""

    __tablename__ = "tenant_job_environments"
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True,
                                           autoincrement=False)
    env: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)  # name -> value
    network: Mapped[str | None] = mapped_column(String(16))
