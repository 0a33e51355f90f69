"""telegram links: chats linked to CDT accounts, one-time link codes

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('telegram_codes',
    sa.Column('code_hash', sa.Text(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['cdt.users.id'], name=op.f('fk_telegram_codes_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('code_hash', name=op.f('pk_telegram_codes')),
    schema='cdt'
    )
    op.create_index(op.f('ix_telegram_codes_expires_at'), 'telegram_codes', ['expires_at'], unique=False, schema='cdt')
    op.create_index(op.f('ix_telegram_codes_user_id'), 'telegram_codes', ['user_id'], unique=False, schema='cdt')
    op.create_table('telegram_links',
    sa.Column('telegram_user_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['cdt.users.id'], name=op.f('fk_telegram_links_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('telegram_user_id', name=op.f('pk_telegram_links')),
    schema='cdt'
    )
    op.create_index(op.f('ix_telegram_links_user_id'), 'telegram_links', ['user_id'], unique=False, schema='cdt')


def downgrade() -> None:
    op.drop_index(op.f('ix_telegram_links_user_id'), table_name='telegram_links', schema='cdt')
    op.drop_table('telegram_links', schema='cdt')
    op.drop_index(op.f('ix_telegram_codes_user_id'), table_name='telegram_codes', schema='cdt')
    op.drop_index(op.f('ix_telegram_codes_expires_at'), table_name='telegram_codes', schema='cdt')
    op.drop_table('telegram_codes', schema='cdt')
