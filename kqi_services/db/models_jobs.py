"""Models of the job engine: trainings, inferences and preprocessing runs share one table."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .models import AuditMixin, Base, utcnow


class Job(AuditMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("uq_jobs_display_id", "tenant_id", "kind", "display_id", unique=True),
                      # the lists' order and date filter, the engine's status look-ups (migration 0009)
                      Index("ix_jobs_tenant_kind_id", "tenant_id", "kind", "id"),
                      Index("ix_jobs_tenant_kind_created_at", "tenant_id", "kind", "created_at"),
                      Index("ix_jobs_status_id", "status", "id"),
                      # the trainings with a TensorBoard, among all jobs (migration 0013)
                      Index("ix_jobs_tensorboard_port", "tensorboard_port",
                            sqlite_where=text("tensorboard_port IS NOT NULL"),
                            postgresql_where=text("tensorboard_port IS NOT NULL")),
                      {"sqlite_autoincrement": True})  # ids are never reused

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False, index=True)  # training | inference | preprocessing
    display_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    memo: Mapped[str | None] = mapped_column(Text)
    favorite: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)

    # what runs
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id"), index=True)
    local_dataset: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)  # copy instead of symlink
    registry_id: Mapped[int | None] = mapped_column(ForeignKey("registries.id"))
    image: Mapped[str | None] = mapped_column(String(512))
    tag: Mapped[str | None] = mapped_column(String(256))
    git_id: Mapped[int | None] = mapped_column(ForeignKey("git_servers.id"))
    repository_owner: Mapped[str | None] = mapped_column(String(256))
    repository_name: Mapped[str | None] = mapped_column(String(256))
    branch: Mapped[str | None] = mapped_column(String(256))
    commit_id: Mapped[str | None] = mapped_column(String(64))
    entry_point: Mapped[str | None] = mapped_column(Text)
    options: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)  # user environment variables
    cpu: Mapped[float] = mapped_column(Float, nullable=False)
    memory: Mapped[float] = mapped_column(Float, nullable=False)  # GiB
    gpu: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    partition: Mapped[str | None] = mapped_column(String(128))
    ports: Mapped[list] = mapped_column(JSON, default=list, nullable=False)
    zip: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    # kind-specific settings (e.g. the input data of a preprocessing run)
    extra: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    # the port of the training's TensorBoard while it has one (its record is extra["tensorboard"],
    # kqi_services/tensorboard.py keeps both): the indexed way to find every TensorBoard
    tensorboard_port: Mapped[int | None] = mapped_column(Integer)

    # where it is
    status: Mapped[str] = mapped_column(String(32), nullable=False, index=True)
    status_reason: Mapped[str | None] = mapped_column(Text)
    backend: Mapped[str | None] = mapped_column(String(32))
    backend_ref: Mapped[str | None] = mapped_column(String(512))  # local: job folder; kubernetes: job name
    node: Mapped[str | None] = mapped_column(String(253))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    queued_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    token_hash: Mapped[str | None] = mapped_column(String(64))  # the job token's hash while it lives

    parents: Mapped[list["JobParent"]] = relationship(cascade="all, delete-orphan", foreign_keys="JobParent.job_id",
                                                      order_by="JobParent.parent_id")
    tags: Mapped[list["JobTag"]] = relationship(cascade="all, delete-orphan", order_by="JobTag.name")
    files: Mapped[list["JobFile"]] = relationship(cascade="all, delete-orphan", order_by="JobFile.id")

    @property
    def parent_ids(self) -> list[int]:
        return [p.parent_id for p in self.parents]

    @property
    def tag_names(self) -> list[str]:
        return [t.name for t in self.tags]

    @property
    def key(self) -> str:
        """The name of its container / sandbox: fixed at submit time (e.g. inference-<name>-<id>)."""
        return (self.extra or {}).get("key") or f"{self.kind}-{self.id}"


class JobParent(Base):
    __tablename__ = "job_parents"
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), primary_key=True, index=True)


class JobTag(Base):
    __tablename__ = "job_tags"
    __table_args__ = (Index("ix_job_tags_name", "name", "job_id"),)  # tag= filters
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)


class JobFile(Base):
    """A file attached to a job: the log and output.zip (made by the platform) or user uploads."""

    __tablename__ = "job_files"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True)
    file_name: Mapped[str] = mapped_column(String(255), nullable=False)
    stored_path: Mapped[str] = mapped_column(String(2048), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    is_locked: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)  # made by the platform
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(255))
