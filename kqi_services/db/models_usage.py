"""The usage ledger and the resource samples.

`UsageRecord`: one row per run of something that holds resources (a training, inference or
preprocessing job, a notebook server, a TensorBoard), from its real start to its end, with
the cpu / memory (GiB) / gpu it held; cpu-, memory- and gpu-seconds follow from the times.
Rows are not tied to the job or tenant rows by foreign keys: the ledger outlives deletions.

`ResourceSample`: KAMONOHASHI's hourly resource history (ResourceMonitor): what each node
held at a sampling time, one row per container (a node with nothing on it: one row without
a container).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base


class UsageRecord(Base):
    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_kind_ref", "kind", "ref_id"),
                      Index("ix_usage_records_started_at", "started_at"),
                      Index("ix_usage_records_ended_at", "ended_at"),
                      {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # training | inference | preprocessing | notebook | tensorboard
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    ref_id: Mapped[int] = mapped_column(Integer, nullable=False)  # the job's, notebook's or training's id
    name: Mapped[str] = mapped_column(String(255), nullable=False)  # its container name (training-12, kqi-3 ...)
    tenant_id: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    tenant_name: Mapped[str] = mapped_column(String(128), nullable=False)
    user_name: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    cpu: Mapped[float] = mapped_column(Float, nullable=False, default=0)
    memory: Mapped[float] = mapped_column(Float, nullable=False, default=0)  # GiB
    gpu: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    node: Mapped[str | None] = mapped_column(String(253))
    started_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)


class ResourceSample(Base):
    __tablename__ = "resource_samples"
    __table_args__ = (Index("ix_resource_samples_sampled_at", "sampled_at"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sampled_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    node_name: Mapped[str] = mapped_column(String(253), nullable=False)
    node_cpu: Mapped[float | None] = mapped_column(Float)
    node_memory: Mapped[float | None] = mapped_column(Float)
    node_gpu: Mapped[int | None] = mapped_column(Integer)
    tenant_id: Mapped[int | None] = mapped_column(Integer)
    tenant_name: Mapped[str | None] = mapped_column(String(128))
    container_name: Mapped[str | None] = mapped_column(String(255))
    cpu: Mapped[float | None] = mapped_column(Float)
    memory: Mapped[float | None] = mapped_column(Float)
    gpu: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str | None] = mapped_column(String(64))
