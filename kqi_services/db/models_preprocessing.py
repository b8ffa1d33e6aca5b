"""Models of preprocessing: definitions, and one history per (definition, input data)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .models import AuditMixin, Base, utcnow


class Preprocessing(AuditMixin, Base):
    __tablename__ = "preprocessings"
    __table_args__ = (Index("uq_preprocessings_display_id", "tenant_id", "display_id", unique=True),
                      Index("ix_preprocessings_tenant_id_id", "tenant_id", "id"),
                      Index("ix_preprocessings_tenant_created_at", "tenant_id", "created_at"),
                      {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True)
    display_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    memo: Mapped[str | None] = mapped_column(Text)
    entry_point: Mapped[str | None] = mapped_column(Text)
    registry_id: Mapped[int | None] = mapped_column(ForeignKey("registries.id"))
    image: Mapped[str | None] = mapped_column(String(512))
    tag: Mapped[str | None] = mapped_column(String(256))
    git_id: Mapped[int | None] = mapped_column(ForeignKey("git_servers.id"))
    repository_owner: Mapped[str | None] = mapped_column(String(256))
    repository_name: Mapped[str | None] = mapped_column(String(256))
    branch: Mapped[str | None] = mapped_column(String(256))
    commit_id: Mapped[str | None] = mapped_column(String(64))
    cpu: Mapped[float | None] = mapped_column(Float)
    memory: Mapped[float | None] = mapped_column(Float)
    gpu: Mapped[int | None] = mapped_column(Integer)


class PreprocessHistory(Base):
    """A run of a preprocessing over one data: on the platform (a job) or offline (CLI upload)."""

    __tablename__ = "preprocess_histories"
    __table_args__ = (UniqueConstraint("preprocess_id", "input_data_id"),
                      Index("ix_preprocess_histories_preprocess_id_id", "preprocess_id", "id"),
                      {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True)
    preprocess_id: Mapped[int] = mapped_column(ForeignKey("preprocessings.id"), nullable=False, index=True)
    input_data_id: Mapped[int] = mapped_column(ForeignKey("data.id"), nullable=False, index=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    # for offline histories (no job): Opened, Completed or Killed; otherwise the job's status
    status: Mapped[str] = mapped_column(String(32), nullable=False)
    status_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(255))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)

    outputs: Mapped[list["PreprocessHistoryOutput"]] = relationship(cascade="all, delete-orphan")


class PreprocessHistoryOutput(Base):
    __tablename__ = "preprocess_history_outputs"
    history_id: Mapped[int] = mapped_column(ForeignKey("preprocess_histories.id", ondelete="CASCADE"),
                                            primary_key=True)
    data_id: Mapped[int] = mapped_column(ForeignKey("data.id"), primary_key=True)
