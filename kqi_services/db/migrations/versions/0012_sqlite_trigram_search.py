"""SQLite trigram search: FTS5 trigram indexes for the lists' contains-searches

PostgreSQL answers `name ILIKE '%x%'` from the pg_trgm indexes of migration 0009; SQLite has no
index for `LIKE '%x%'` and read every row of a tenant. On SQLite (3.34 and later, built with
FTS5) this makes external-content FTS5 tables with the trigram tokenizer over the searched text
columns of data (name, memo) and jobs (name, memo, entry_point), filled
from the rows there are and kept by triggers (an UPDATE trigger only for those columns, so a
job's status changes do not touch it). domain/data.contains() narrows a search of 3 or more
characters to the index's candidates and still applies the LIKE (the exact rule); shorter
searches, PostgreSQL and SQLite builds without FTS5 or the trigram tokenizer keep the LIKE alone.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 03:30:00.000000
"""
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

#: table → the columns of its trigram index (the FTS table is <table>_fts)
#: (not created_by: a few user names shared by many rows, where a trigram narrows nothing)
SEARCHED = {"data": ("name", "memo"), "jobs": ("name", "memo", "entry_point")}


def trigram_available(bind) -> bool:
    """SQLite 3.34+ built with FTS5 (the trigram tokenizer came in 3.34)."""
    if bind.dialect.name != "sqlite":
        return False
    version = tuple(int(p) for p in bind.exec_driver_sql("select sqlite_version()").scalar().split("."))
    options = {row[0] for row in bind.exec_driver_sql("pragma compile_options")}
    return version >= (3, 34, 0) and "ENABLE_FTS5" in options


def upgrade():
    bind = op.get_bind()
    if not trigram_available(bind):
        return
    for table, columns in SEARCHED.items():
        fts = f"{table}_fts"
        cols = ", ".join(columns)
        new = ", ".join(f"new.{c}" for c in columns)
        old = ", ".join(f"old.{c}" for c in columns)
        op.execute(f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content='{table}', content_rowid='id',"
                   " tokenize='trigram')")
        op.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")
        op.execute(f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN"
                   f" INSERT INTO {fts}(rowid, {cols}) VALUES (new.id, {new}); END")
        op.execute(f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN"
                   f" INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.id, {old}); END")
        op.execute(f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {cols} ON {table} BEGIN"
                   f" INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.id, {old});"
                   f" INSERT INTO {fts}(rowid, {cols}) VALUES (new.id, {new}); END")


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for table in SEARCHED:
        fts = f"{table}_fts"
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {fts}_{trigger}")
        op.execute(f"DROP TABLE IF EXISTS {fts}")
