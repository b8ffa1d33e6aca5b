"""list indexes: the lists' order, filters and tags, and the engine's status look-ups

The list routes filter, order (id descending within a tenant) and page in the database
(kqi_services/domain/paging.py). These indexes serve them at 100,000 rows:

- (tenant, id) for each list's order, so that a page is an index range read backwards;
- (tenant, created_at) for the date filters (SearchTime: a day, `>`, `<=` ...);
- (name, row) on the tag tables, for `tag=` (their primary keys start with the row);
- (preprocess_id, id) for a preprocessing's histories;
- (status, id) on jobs for the engine's tick (Queued and active jobs among many finished ones);
- on PostgreSQL, trigram GIN indexes (pg_trgm) for the contains-searches of names, memos and
  commands (ILIKE '%text%'), when the extension can be created (it needs a role allowed to
  create it; without it those searches scan the tenant's rows, as on SQLite, which has no such
  index).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 00:50:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

# (index name, table, columns): on both databases
INDEXES = (
    ("ix_data_tenant_id_id", "data", ["tenant_id", "id"]),
    ("ix_data_tenant_created_at", "data", ["tenant_id", "created_at"]),
    ("ix_datasets_tenant_id_id", "datasets", ["tenant_id", "id"]),
    ("ix_datasets_tenant_created_at", "datasets", ["tenant_id", "created_at"]),
    ("ix_preprocessings_tenant_id_id", "preprocessings", ["tenant_id", "id"]),
    ("ix_preprocessings_tenant_created_at", "preprocessings", ["tenant_id", "created_at"]),
    ("ix_jobs_tenant_kind_id", "jobs", ["tenant_id", "kind", "id"]),
    ("ix_jobs_tenant_kind_created_at", "jobs", ["tenant_id", "kind", "created_at"]),
    ("ix_jobs_status_id", "jobs", ["status", "id"]),
    ("ix_data_tags_name", "data_tags", ["name", "data_id"]),
    ("ix_job_tags_name", "job_tags", ["name", "job_id"]),
    ("ix_preprocess_histories_preprocess_id_id", "preprocess_histories", ["preprocess_id", "id"]),
)

# (table, column): trigram indexes for ILIKE '%...%' on PostgreSQL
TRIGRAM = (
    ("data", "name"), ("data", "memo"), ("data", "created_by"),
    ("datasets", "name"), ("datasets", "memo"),
    ("preprocessings", "name"), ("preprocessings", "memo"),
    ("jobs", "name"), ("jobs", "memo"), ("jobs", "entry_point"), ("jobs", "created_by"),
)


def _trigram_name(table, column):
    return f"ix_{table}_{column}_trgm"


def _has_trigram(bind) -> bool:
    """Whether pg_trgm is there, creating it when this role may (in a savepoint: a refusal
    leaves the migration's transaction usable)."""
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).scalar():
        return True
    available = bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar()
    if not available:
        return False
    savepoint = bind.begin_nested()
    try:
        bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        savepoint.commit()
        return True
    except sa.exc.DBAPIError:
        savepoint.rollback()
        return False


def upgrade():
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _has_trigram(bind):
        for table, column in TRIGRAM:
            op.execute(f"CREATE INDEX IF NOT EXISTS {_trigram_name(table, column)} ON {table} "
                       f"USING gin ({column} gin_trgm_ops)")


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table, column in TRIGRAM:
            op.execute(f"DROP INDEX IF EXISTS {_trigram_name(table, column)}")
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
