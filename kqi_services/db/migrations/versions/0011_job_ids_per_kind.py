"""job ids per kind: a training, an inference and a preprocessing run each count 1, 2, 3 … per tenant

Trainings, inferences and preprocessing runs share the jobs table, and the API showed the
table's id, so a tenant's trainings were numbered 1, 5, 6 … with the inferences and
preprocessing runs in the gaps. From here on the id a job is shown by (and that every route
takes) is its per-tenant, per-kind display id (kqi_services/domain/ids.py, counter
`job:<kind>`), as KAMONOHASHI keeps trainings, inferences and preprocessing histories apart.

Existing jobs keep the id their users saw: their display id becomes their table id (unique
within a tenant and kind, since table ids are unique), and each (tenant, kind) counter is set to
its highest display id, so new jobs continue after the highest of their kind. The table id
stays the job's internal key (storage folders, container names, job tokens).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 03:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    # in two steps, so that no row ever takes a display id another row still holds (the unique
    # index (tenant_id, kind, display_id) is checked row by row)
    bind.execute(sa.text("UPDATE jobs SET display_id = -id"))
    bind.execute(sa.text("UPDATE jobs SET display_id = id"))
    bind.execute(sa.text("DELETE FROM display_id_counters WHERE kind LIKE 'job:%'"))
    rows = bind.execute(sa.text(
        "SELECT tenant_id, kind, MAX(display_id) AS last_id FROM jobs GROUP BY tenant_id, kind")).fetchall()
    for row in rows:
        bind.execute(sa.text("INSERT INTO display_id_counters (tenant_id, kind, last_id) VALUES (:t, :k, :l)"),
                     {"t": row.tenant_id, "k": f"job:{row.kind}", "l": row.last_id})


def downgrade():
    # the display ids stay as they are (they were never shown as ids before this revision)
    pass
