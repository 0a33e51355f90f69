"""accounts: users, grants, API tokens, audit log; tile cache keyed by audience

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ROLES = "'federal', 'regional', 'municipal', 'agency', 'analyst', 'enterprise', 'citizen'"


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.Text(), nullable=False),
        sa.Column("display_name", sa.Text(), nullable=True),
        sa.Column("organisation", sa.Text(), nullable=True),
        sa.Column("password_hash", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("login", name=op.f("uq_users_login")),
        schema="cdt",
    )
    op.create_table(
        "grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.Text(), nullable=False),
        sa.Column("territory_id", sa.Integer(), nullable=True),
        sa.Column("sector", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(f"role IN ({ROLES})", name=op.f("ck_grants_role")),
        sa.CheckConstraint("role <> 'agency' OR sector IS NOT NULL", name=op.f("ck_grants_agency_sector")),
        sa.CheckConstraint("territory_id IS NOT NULL OR role IN ('federal', 'enterprise', 'citizen')",
                           name=op.f("ck_grants_territory")),
        sa.ForeignKeyConstraint(["territory_id"], ["cdt.territories.id"], name=op.f("fk_grants_territory_id_territories"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["cdt.users.id"], name=op.f("fk_grants_user_id_users"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grants")),
        schema="cdt",
    )
    op.create_index(op.f("ix_grants_user_id"), "grants", ["user_id"], unique=False, schema="cdt")
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["cdt.users.id"], name=op.f("fk_api_tokens_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
        schema="cdt",
    )
    op.create_index(op.f("ix_api_tokens_user_id"), "api_tokens", ["user_id"], unique=False, schema="cdt")
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("remote_addr", sa.Text(), nullable=True),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
        schema="cdt",
    )
    op.create_index("ix_audit_log_action_at", "audit_log", ["action", "at"], unique=False, schema="cdt")
    # Restricted layers are scoped by territory: utility lines get the link the other layers have.
    op.add_column("utility_lines", sa.Column("territory_id", sa.Integer(), nullable=True), schema="cdt")
    op.create_foreign_key(op.f("fk_utility_lines_territory_id_territories"), "utility_lines", "territories",
                          ["territory_id"], ["id"], source_schema="cdt", referent_schema="cdt")
    op.create_index(op.f("ix_utility_lines_territory_id"), "utility_lines", ["territory_id"], schema="cdt")
    # Tiles of filtered layers differ per audience: it joins the cache key.
    op.execute("DELETE FROM cdt.tile_cache")
    op.add_column("tile_cache", sa.Column("audience", sa.Text(), server_default="public", nullable=False),
                  schema="cdt")
    op.execute("ALTER TABLE cdt.tile_cache DROP CONSTRAINT pk_tile_cache")
    op.execute("ALTER TABLE cdt.tile_cache ADD CONSTRAINT pk_tile_cache PRIMARY KEY (tileset, tms, z, x, y, audience)")


def downgrade() -> None:
    op.execute("DELETE FROM cdt.tile_cache")
    op.execute("ALTER TABLE cdt.tile_cache DROP CONSTRAINT pk_tile_cache")
    op.drop_column("tile_cache", "audience", schema="cdt")
    op.execute("ALTER TABLE cdt.tile_cache ADD CONSTRAINT pk_tile_cache PRIMARY KEY (tileset, tms, z, x, y)")
    op.drop_index(op.f("ix_utility_lines_territory_id"), table_name="utility_lines", schema="cdt")
    op.drop_constraint(op.f("fk_utility_lines_territory_id_territories"), "utility_lines", schema="cdt")
    op.drop_column("utility_lines", "territory_id", schema="cdt")
    op.drop_index("ix_audit_log_action_at", table_name="audit_log", schema="cdt")
    op.drop_table("audit_log", schema="cdt")
    op.drop_index(op.f("ix_api_tokens_user_id"), table_name="api_tokens", schema="cdt")
    op.drop_table("api_tokens", schema="cdt")
    op.drop_index(op.f("ix_grants_user_id"), table_name="grants", schema="cdt")
    op.drop_table("grants", schema="cdt")
    op.drop_table("users", schema="cdt")
