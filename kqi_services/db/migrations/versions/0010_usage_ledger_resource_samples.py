"""usage ledger and resource samples: usage_records (a row per run of a job, notebook or
TensorBoard, start to end, with its cpu/memory/gpu) and resource_samples (hourly samples of
what each node holds, KAMONOHASHI's resource history)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 03:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'usage_records',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('ref_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.Column('tenant_id', sa.Integer(), nullable=False),
        sa.Column('tenant_name', sa.String(length=128), nullable=False),
        sa.Column('user_name', sa.String(length=255), nullable=False),
        sa.Column('cpu', sa.Float(), nullable=False),
        sa.Column('memory', sa.Float(), nullable=False),
        sa.Column('gpu', sa.Integer(), nullable=False),
        sa.Column('node', sa.String(length=253), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('ended_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_usage_records_kind_ref', 'usage_records', ['kind', 'ref_id'])
    op.create_index('ix_usage_records_started_at', 'usage_records', ['started_at'])
    op.create_index('ix_usage_records_ended_at', 'usage_records', ['ended_at'])
    op.create_index(op.f('ix_usage_records_tenant_id'), 'usage_records', ['tenant_id'])
    op.create_index(op.f('ix_usage_records_user_name'), 'usage_records', ['user_name'])
    op.create_table(
        'resource_samples',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('sampled_at', sa.DateTime(), nullable=False),
        sa.Column('node_name', sa.String(length=253), nullable=False),
        sa.Column('node_cpu', sa.Float(), nullable=True),
        sa.Column('node_memory', sa.Float(), nullable=True),
        sa.Column('node_gpu', sa.Integer(), nullable=True),
        sa.Column('tenant_id', sa.Integer(), nullable=True),
        sa.Column('tenant_name', sa.String(length=128), nullable=True),
        sa.Column('container_name', sa.String(length=255), nullable=True),
        sa.Column('cpu', sa.Float(), nullable=True),
        sa.Column('memory', sa.Float(), nullable=True),
        sa.Column('gpu', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_resource_samples_sampled_at', 'resource_samples', ['sampled_at'])


def downgrade() -> None:
    op.drop_index('ix_resource_samples_sampled_at', table_name='resource_samples')
    op.drop_table('resource_samples')
    for name in ('ix_usage_records_user_name', 'ix_usage_records_tenant_id', 'ix_usage_records_ended_at',
                 'ix_usage_records_started_at', 'ix_usage_records_kind_ref'):
        op.drop_index(name, table_name='usage_records')
    op.drop_table('usage_records')
