"""shell sessions: the web shell's record of who opened a terminal into which job, and when

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 22:00:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('shell_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('job_kind', sa.String(length=32), nullable=False),
    sa.Column('job_name', sa.String(length=256), nullable=True),
    sa.Column('user_name', sa.String(length=255), nullable=False),
    sa.Column('remote_ip', sa.String(length=64), nullable=True),
    sa.Column('opened_at', sa.DateTime(), nullable=False),
    sa.Column('closed_at', sa.DateTime(), nullable=True),
    sa.Column('close_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sqlite_autoincrement=True
    )
    op.create_index(op.f('ix_shell_sessions_job_id'), 'shell_sessions', ['job_id'], unique=False)
    op.create_index(op.f('ix_shell_sessions_tenant_id'), 'shell_sessions', ['tenant_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_shell_sessions_tenant_id'), table_name='shell_sessions')
    op.drop_index(op.f('ix_shell_sessions_job_id'), table_name='shell_sessions')
    op.drop_table('shell_sessions')
