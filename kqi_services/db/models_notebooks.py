"""Notebooks: KQI's record of each notebook; the running server itself is the hub's named server."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import AuditMixin, Base


class Notebook(AuditMixin, Base):
    __tablename__ = "notebooks"
    __table_args__ = (Index("uq_notebooks_display_id", "tenant_id", "display_id", unique=True),
                      {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True)
    display_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    memo: Mapped[str | None] = mapped_column(Text)
    server_name: Mapped[str] = mapped_column(String(255), nullable=False)  # the owner's named server
    request: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)  # the run body, for re-runs
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(32), nullable=False)  # last known
    status_reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime)
