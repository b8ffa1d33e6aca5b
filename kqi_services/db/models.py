"""SQLAlchemy 2 models of the kqi service.

Users and groups belong to the hub; rows here refer to hub users by name and to
tenants (hub groups) through `Tenant.name`. Secrets are stored encrypted
(`*_encrypted` columns, see kqi_services/secrets.py).
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class AuditMixin:
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    created_by: Mapped[str | None] = mapped_column(String(255))
    modified_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)
    modified_by: Mapped[str | None] = mapped_column(String(255))


tenant_git_servers = Table(
    "tenant_git_servers",
    Base.metadata,
    Column("tenant_id", ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("git_server_id", ForeignKey("git_servers.id", ondelete="CASCADE"), primary_key=True),
)

tenant_registries = Table(
    "tenant_registries",
    Base.metadata,
    Column("tenant_id", ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("registry_id", ForeignKey("registries.id", ondelete="CASCADE"), primary_key=True),
)

node_tenants = Table(
    "node_tenants",
    Base.metadata,
    Column("node_id", ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True),
    Column("tenant_id", ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
)


class GitServer(AuditMixin, Base):
    """A git service the platform clones model repositories from."""

    __tablename__ = "git_servers"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    # 1 GitHub, 2 GitLab, 3 GitLab.com, 4 GitBucket, 5 plain git over HTTP(S), 6 bare repositories on this machine
    service_type: Mapped[int] = mapped_column(Integer, nullable=False)
    api_url: Mapped[str | None] = mapped_column(String(1024))
    repository_url: Mapped[str] = mapped_column(String(1024), nullable=False)
    is_not_editable: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class Registry(AuditMixin, Base):
    """A container registry that job and notebook images come from."""

    __tablename__ = "registries"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    host: Mapped[str] = mapped_column(String(512), nullable=False)
    port_no: Mapped[int | None] = mapped_column(Integer)
    # 1 Docker Hub, 2 GitLab, 3 private Docker registry, 4 NVIDIA GPU Cloud
    service_type: Mapped[int] = mapped_column(Integer, nullable=False)
    project_name: Mapped[str | None] = mapped_column(String(255))
    api_url: Mapped[str | None] = mapped_column(String(1024))
    registry_url: Mapped[str | None] = mapped_column(String(1024))
    is_not_editable: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)


class Storage(AuditMixin, Base):
    """An object store endpoint: a local directory or an S3 service."""

    __tablename__ = "storages"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False, default="s3")  # "local" | "s3"
    server_url: Mapped[str] = mapped_column(String(1024), nullable=False)
    # S3: the address outside clients reach the service by, for presigned URLs (None: server_url)
    public_url: Mapped[str | None] = mapped_column(String(1024))
    bucket: Mapped[str | None] = mapped_column(String(255))
    region: Mapped[str | None] = mapped_column(String(64))
    path_style: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    access_key: Mapped[str | None] = mapped_column(String(255))
    secret_key_encrypted: Mapped[str | None] = mapped_column(Text)
    nfs_server: Mapped[str | None] = mapped_column(String(255))
    nfs_root: Mapped[str | None] = mapped_column(String(1024))


class Tenant(AuditMixin, Base):
    """Settings of a tenant; the tenant's members are the hub group `name`."""

    __tablename__ = "tenants"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    display_name: Mapped[str] = mapped_column(String(128), nullable=False)
    storage_id: Mapped[int | None] = mapped_column(ForeignKey("storages.id"))
    default_git_id: Mapped[int | None] = mapped_column(ForeignKey("git_servers.id"))
    default_registry_id: Mapped[int | None] = mapped_column(ForeignKey("registries.id"))
    limit_cpu: Mapped[float | None] = mapped_column(Float)
    limit_memory: Mapped[float | None] = mapped_column(Float)  # GiB
    limit_gpu: Mapped[int | None] = mapped_column(Integer)
    available_infinite_time_notebook: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)

    storage: Mapped[Storage | None] = relationship()
    git_servers: Mapped[list[GitServer]] = relationship(secondary=tenant_git_servers, order_by=GitServer.id)
    registries: Mapped[list[Registry]] = relationship(secondary=tenant_registries, order_by=Registry.id)

    @property
    def storage_path(self) -> str:
        """Prefix under which the tenant's files live in its object store."""
        return f"tenants/{self.name}"


class Node(AuditMixin, Base):
    """A machine that runs jobs and notebooks, with its partition and capacity."""

    __tablename__ = "nodes"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are never reused
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(253), unique=True, nullable=False)
    memo: Mapped[str | None] = mapped_column(String(1024))
    partition: Mapped[str | None] = mapped_column(String(128))
    # 0 disabled, 1 private (only assigned tenants), 2 public
    access_level: Mapped[int] = mapped_column(Integer, default=2, nullable=False)
    tensorboard_enabled: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    notebook_enabled: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    cpu: Mapped[float | None] = mapped_column(Float)
    memory: Mapped[float | None] = mapped_column(Float)  # GiB
    gpu: Mapped[int | None] = mapped_column(Integer)

    tenants: Mapped[list[Tenant]] = relationship(secondary=node_tenants, order_by=Tenant.id)


class UserSetting(Base):
    """KQI's per-user settings. The user itself (name, password, groups) is the hub's."""

    __tablename__ = "user_settings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    display_name: Mapped[str | None] = mapped_column(String(255))
    default_tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"))
    slack_url_encrypted: Mapped[str | None] = mapped_column(Text)
    slack_mention: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class UserGitToken(Base):
    __tablename__ = "user_git_tokens"
    user_id: Mapped[int] = mapped_column(ForeignKey("user_settings.id", ondelete="CASCADE"), primary_key=True)
    git_server_id: Mapped[int] = mapped_column(ForeignKey("git_servers.id", ondelete="CASCADE"), primary_key=True)
    token_encrypted: Mapped[str] = mapped_column(Text, nullable=False)


class UserRegistryCredential(Base):
    __tablename__ = "user_registry_credentials"
    user_id: Mapped[int] = mapped_column(ForeignKey("user_settings.id", ondelete="CASCADE"), primary_key=True)
    registry_id: Mapped[int] = mapped_column(ForeignKey("registries.id", ondelete="CASCADE"), primary_key=True)
    registry_user_name: Mapped[str | None] = mapped_column(String(255))
    password_encrypted: Mapped[str] = mapped_column(Text, nullable=False)


__all__ = [
    "Base",
    "GitServer",
    "Node",
    "Registry",
    "Storage",
    "Tenant",
    "UniqueConstraint",
    "UserGitToken",
    "UserRegistryCredential",
    "UserSetting",
    "utcnow",
]


# the other model modules register their tables on Base.metadata
from . import models_data  # noqa: E402,F401
from . import models_jobs  # noqa: E402,F401
from . import models_preprocessing  # noqa: E402,F401
from . import models_notebooks  # noqa: E402,F401
from . import models_job_environment  # noqa: E402,F401
from . import models_shell  # noqa: E402,F401
from . import models_ids  # noqa: E402,F401
from . import models_usage  # noqa: E402,F401
