"""Web shell sessions: who opened a terminal into which running job, and when it closed.

A row is written when the shell opens and completed when it closes; tenant administrators
list them (GET /tenant/shell-sessions). The job id is kept without a foreign key, so the
record outlives a deleted job.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, utcnow


class ShellSession(Base):
    __tablename__ = "shell_sessions"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True)
    job_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)  # the id the tenant sees
    job_kind: Mapped[str] = mapped_column(String(32), nullable=False)  # training | inference | preprocessing
    job_name: Mapped[str | None] = mapped_column(String(256))
    user_name: Mapped[str] = mapped_column(String(255), nullable=False)
    remote_ip: Mapped[str | None] = mapped_column(String(64))
    opened_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)
    close_reason: Mapped[str | None] = mapped_column(Text)
