"""job environment: system setting (one row) and per-tenant overrides

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 10:00:00.000000
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    system = op.create_table('system_job_environment',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('env', sa.JSON(), nullable=False),
    sa.Column('network', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=True),
    sa.Column('modified_at', sa.DateTime(), nullable=False),
    sa.Column('modified_by', sa.String(length=255), nullable=True),
    sa.CheckConstraint('id = 1', name='ck_system_job_environment_one_row'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('tenant_job_environments',
    sa.Column('tenant_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('env', sa.JSON(), nullable=False),
    sa.Column('network', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=True),
    sa.Column('modified_at', sa.DateTime(), nullable=False),
    sa.Column('modified_by', sa.String(length=255), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('tenant_id')
    )
    # the one row of the system setting: no variables, the host's network (what jobs had before)
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    op.bulk_insert(system, [{'id': 1, 'env': {}, 'network': 'host', 'created_at': now, 'modified_at': now}])


def downgrade():
    op.drop_table('tenant_job_environments')
    op.drop_table('system_job_environment')
