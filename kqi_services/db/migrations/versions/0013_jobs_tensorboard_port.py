"""jobs.tensorboard_port: the trainings with a TensorBoard through an index

A training's TensorBoard is recorded in its `extra["tensorboard"]` (kqi_services/tensorboard.py),
and every TensorBoard was found (the reconciler on its timer and at each start, the directory's
orphans) with `CAST(extra AS TEXT) LIKE '%"tensorboard"%'`: a read of every job's JSON, at
100,000 jobs a scan of the whole table. From here the record's port is also the job's
`tensorboard_port` (NULL without a TensorBoard, set and cleared with the record), under a
partial index of the rows that have one (`WHERE tensorboard_port IS NOT NULL`, on SQLite and
PostgreSQL): finding them all reads that small index only.

The upgrade fills the column from the records there are (in Python, over the rows whose JSON
text names "tensorboard": JSON functions differ between the two databases); a record without a
usable port (never written so) is left as it is, unseen as before by anything that needs the
port. The downgrade drops the index and the column (the records stay in `extra`).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 06:30:00.000000
"""
import json

from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

INDEX = "ix_jobs_tensorboard_port"
STATE = "tensorboard"  # (kqi_services/tensorboard.py STATE, as of this revision)


def _port(extra) -> int | None:
    if isinstance(extra, str):
        try:
            extra = json.loads(extra)
        except ValueError:
            return None
    state = extra.get(STATE) if isinstance(extra, dict) else None
    port = state.get("port") if isinstance(state, dict) else None
    if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536:
        return port
    return None


def upgrade():
    op.add_column("jobs", sa.Column("tensorboard_port", sa.Integer(), nullable=True))
    where = sa.text("tensorboard_port IS NOT NULL")
    op.create_index(INDEX, "jobs", ["tensorboard_port"], sqlite_where=where, postgresql_where=where)
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, CAST(extra AS TEXT) AS extra FROM jobs WHERE kind = 'training'"
        " AND CAST(extra AS TEXT) LIKE :named"), {"named": f'%"{STATE}"%'}).fetchall()
    for row in rows:
        port = _port(row.extra)
        if port is not None:
            bind.execute(sa.text("UPDATE jobs SET tensorboard_port = :p WHERE id = :i"), {"p": port, "i": row.id})


def downgrade():
    bind = op.get_bind()
    op.drop_index(INDEX, table_name="jobs")
    if bind.dialect.name == "sqlite":
        version = tuple(int(p) for p in bind.exec_driver_sql("select sqlite_version()").scalar().split("."))
        if version < (3, 35, 0):
            # no ALTER TABLE ... DROP COLUMN before 3.35: the table is copied (on 3.34 exactly, where
            # 0012 made its trigram triggers, the copy does not carry them: downgrade below 0012 too)
            with op.batch_alter_table("jobs", recreate="always") as batch_op:
                batch_op.drop_column("tensorboard_port")
            return
    # (not a copy of the table where SQLite can drop a column: that keeps 0012's triggers on jobs)
    op.execute("ALTER TABLE jobs DROP COLUMN tensorboard_port")
