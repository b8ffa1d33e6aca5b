"""Models of data management: data, their files and tags, uploads, datasets."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .models import AuditMixin, Base, utcnow


class Upload(Base):
    """A multipart upload handed out by GET /upload/parameter, until it is completed or dropped."""

    __tablename__ = "uploads"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False)
    user_name: Mapped[str] = mapped_column(String(255), nullable=False)
    store_upload_id: Mapped[str] = mapped_column(String(1024), nullable=False, unique=True)
    key: Mapped[str] = mapped_column(String(2048), nullable=False)  # full key in the store
    stored_path: Mapped[str] = mapped_column(String(2048), nullable=False, unique=True)  # key below the tenant
    file_name: Mapped[str] = mapped_column(String(255), nullable=False)
    resource_type: Mapped[str] = mapped_column(String(64), nullable=False)
    parts_sum: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    size: Mapped[int | None] = mapped_column(BigInteger)
    # set once a file entry owns the object, so that it is not cleaned up
    registered: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class Data(AuditMixin, Base):
    __tablename__ = "data"
    __table_args__ = (Index("uq_data_display_id", "tenant_id", "display_id", unique=True),
                      # the list's order and date filter (migration 0009; trigram ones on PostgreSQL there)
                      Index("ix_data_tenant_id_id", "tenant_id", "id"),
                      Index("ix_data_tenant_created_at", "tenant_id", "created_at"),
                      {"sqlite_autoincrement": True})  # ids are never reused
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True)
    display_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    memo: Mapped[str | None] = mapped_column(Text)
    parent_data_id: Mapped[int | None] = mapped_column(ForeignKey("data.id", ondelete="SET NULL"))

    files: Mapped[list["DataFile"]] = relationship(back_populates="data", cascade="all, delete-orphan",
                                                   order_by="DataFile.id")
    tags: Mapped[list["DataTag"]] = relationship(cascade="all, delete-orphan", order_by="DataTag.name")
    parent: Mapped["Data | None"] = relationship(remote_side=[id])

    @property
    def tag_names(self) -> list[str]:
        return [t.name for t in self.tags]


class DataTag(Base):
    __tablename__ = "data_tags"
    __table_args__ = (Index("ix_data_tags_name", "name", "data_id"),)  # tag= filters
    data_id: Mapped[int] = mapped_column(ForeignKey("data.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)


class DataFile(Base):
    __tablename__ = "data_files"
    __table_args__ = (UniqueConstraint("data_id", "file_name"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    data_id: Mapped[int] = mapped_column(ForeignKey("data.id", ondelete="CASCADE"), nullable=False, index=True)
    file_name: Mapped[str] = mapped_column(String(255), nullable=False)
    stored_path: Mapped[str] = mapped_column(String(2048), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(255))

    data: Mapped[Data] = relationship(back_populates="files")


class DataType(Base):
    """The areas of a dataset: training, testing, validation."""

    __tablename__ = "data_types"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    sort_order: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class DataSet(AuditMixin, Base):
    __tablename__ = "datasets"
    __table_args__ = (Index("uq_datasets_display_id", "tenant_id", "display_id", unique=True),
                      Index("ix_datasets_tenant_id_id", "tenant_id", "id"),
                      Index("ix_datasets_tenant_created_at", "tenant_id", "created_at"),
                      {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False, index=True)
    display_id: Mapped[int] = mapped_column(Integer, nullable=False)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    memo: Mapped[str | None] = mapped_column(Text)
    is_flat: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)

    entries: Mapped[list["DataSetEntry"]] = relationship(back_populates="dataset", cascade="all, delete-orphan",
                                                         order_by="DataSetEntry.id")


class DataSetEntry(Base):
    __tablename__ = "dataset_entries"
    __table_args__ = (UniqueConstraint("dataset_id", "data_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False, index=True)
    data_id: Mapped[int] = mapped_column(ForeignKey("data.id"), nullable=False, index=True)
    data_type_id: Mapped[int] = mapped_column(ForeignKey("data_types.id"), nullable=False)

    dataset: Mapped[DataSet] = relationship(back_populates="entries")
    data: Mapped[Data] = relationship()
    data_type: Mapped[DataType] = relationship()


DATA_TYPES = (("training", 1), ("testing", 2), ("validation", 3))
