"""Database engine, sessions and schema upgrades (Alembic) of the kqi service."""
from __future__ import annotations

import os

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")


def make_engine(db_url: str) -> Engine:
    kwargs = {}
    if db_url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False}
    engine = create_engine(db_url, future=True, **kwargs)
    if db_url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    return engine


def refresh_statistics(engine: Engine) -> None:
    """After rows were written in bulk: the planner's statistics (ANALYZE), and on PostgreSQL the
    visibility map too (VACUUM), so that index-only scans read no table pages."""
    with engine.connect() as c:
        if engine.dialect.name == "postgresql":
            c.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE"))
        else:
            c.execute(text("ANALYZE"))
            c.commit()


def alembic_config(db_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    return cfg


def upgrade(db_url: str, revision: str = "head") -> None:
    """Bring the schema to `revision` (the service does this on every start)."""
    command.upgrade(alembic_config(db_url), revision)


def make_session_factory(engine: Engine) -> sessionmaker:
    return sessionmaker(bind=engine, expire_on_commit=False, future=True)
