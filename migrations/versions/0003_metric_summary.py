"""metric summary: multi-resolution buckets of each series

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 04:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('metric_summary',
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=False),
    sa.Column('level', sa.SmallInteger(), nullable=False),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('first_step', sa.BigInteger(), nullable=False),
    sa.Column('last_step', sa.BigInteger(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('finite_count', sa.Integer(), nullable=False),
    sa.Column('first_value', sa.Float(precision=53), nullable=True),
    sa.Column('last_value', sa.Float(precision=53), nullable=True),
    sa.Column('min_value', sa.Float(precision=53), nullable=True),
    sa.Column('min_step', sa.BigInteger(), nullable=True),
    sa.Column('max_value', sa.Float(precision=53), nullable=True),
    sa.Column('max_step', sa.BigInteger(), nullable=True),
    sa.Column('mean_value', sa.Float(precision=53), nullable=True),
    sa.Column('nan_step', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('run_id', 'key_id', 'level', 'bucket')
    )
    # Runs that already have points get their summaries built from them.
    _backfill()


def _backfill() -> None:
    bind = op.get_bind()
    if not bind.execute(sa.text("SELECT EXISTS (SELECT 1 FROM metric_point)")).scalar():
        return
    from sqlalchemy.orm import Session

    from backend.storage.summaries import SummaryStore

    session = Session(bind=bind)
    store = SummaryStore(session)
    for (run_id,) in bind.execute(sa.text("SELECT DISTINCT run_id FROM metric_point")).all():
        store.rebuild(run_id)
    session.flush()


def downgrade() -> None:
    op.drop_table('metric_summary')
