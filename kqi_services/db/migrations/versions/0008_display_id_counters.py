"""display id counters: a per-tenant counter row per kind of record, and unique display ids

The display ids users see (data 1, 2, 3 … of a tenant) were `max() + 1`, which two concurrent
creations could both take. From here on a counter row per (tenant, kind) hands them out
(kqi_services/domain/ids.py), and a unique index per table refuses a duplicate should any
code ever bypass it. Duplicates an earlier race left behind are renumbered (the later record
gets the next free id) before the indexes are made; the counters start at each tenant's
current highest id.

Also: storages.public_url, the address outside clients reach an S3 endpoint by (presigned URLs
are made for it; the service keeps server_url for its own calls).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 23:50:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

# table, the columns a display id is unique within, the counter kind (a function of the row)
TABLES = (
    ("data", ("tenant_id",), lambda row: "data"),
    ("datasets", ("tenant_id",), lambda row: "dataset"),
    ("notebooks", ("tenant_id",), lambda row: "notebook"),
    ("preprocessings", ("tenant_id",), lambda row: "preprocessing"),
    ("jobs", ("tenant_id", "kind"), lambda row: f"job:{row.kind}"),
)


def _index_name(table):
    return f"uq_{table}_display_id"


def upgrade():
    op.add_column('storages', sa.Column('public_url', sa.String(length=1024), nullable=True))
    op.create_table('display_id_counters',
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('last_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id', 'kind')
    )
    bind = op.get_bind()
    counters = {}
    for table, scope, kind_of in TABLES:
        cols = ", ".join(("id",) + scope + ("display_id",))
        rows = bind.execute(sa.text(f"SELECT {cols} FROM {table} ORDER BY id")).fetchall()
        highest, seen, renumber = {}, set(), []
        for row in rows:
            group = tuple(getattr(row, c) for c in scope)
            highest[group] = max(highest.get(group, 0), row.display_id)
        for row in rows:
            group = tuple(getattr(row, c) for c in scope)
            if (group, row.display_id) in seen:  # a duplicate a concurrent creation left: the later one moves
                highest[group] += 1
                renumber.append((row.id, highest[group]))
            seen.add((group, row.display_id))
            counters[(row.tenant_id, kind_of(row))] = highest[group]
        for row_id, display_id in renumber:
            bind.execute(sa.text(f"UPDATE {table} SET display_id = :d WHERE id = :i"), {"d": display_id, "i": row_id})
        op.create_index(_index_name(table), table, list(scope) + ["display_id"], unique=True)
    for (tenant_id, kind), last_id in sorted(counters.items()):
        bind.execute(sa.text("INSERT INTO display_id_counters (tenant_id, kind, last_id) VALUES (:t, :k, :l)"),
                     {"t": tenant_id, "k": kind, "l": last_id})


def downgrade():
    for table, _scope, _kind in reversed(TABLES):
        op.drop_index(_index_name(table), table_name=table)
    op.drop_table('display_id_counters')
    with op.batch_alter_table('storages') as batch:
        batch.drop_column('public_url')
