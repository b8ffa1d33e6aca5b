"""The per-tenant counters that hand out display ids (see kqi_services/domain/ids.py)."""
from __future__ import annotations

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base


class DisplayIdCounter(Base):
    """The last display id handed out for one kind of record ("data", "job:training", …) of a tenant."""

    __tablename__ = "display_id_counters"
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer, nullable=False)
