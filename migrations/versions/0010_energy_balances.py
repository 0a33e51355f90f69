"""fuel and energy balances: carriers, balances, cells, statistical form values

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "energy_carriers",
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("name_ru", sa.Text(), nullable=False),
        sa.Column("name_en", sa.Text(), nullable=False),
        sa.Column("balance_column", sa.Text(), nullable=False),
        sa.Column("natural_unit", sa.Text(), nullable=True),
        sa.Column("tce_per_unit", sa.Float(), nullable=True),
        sa.Column("coefficient_source", sa.Text(), nullable=False),
        sa.Column("coefficient_set", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_energy_carriers")),
        schema="cdt",
    )
    op.create_table(
        "fuel_balances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("territory_id", sa.Integer(), nullable=True),
        sa.Column("territory_oktmo", sa.Text(), nullable=False),
        sa.Column("territory_name", sa.Text(), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Text(), server_default="actual", nullable=False),
        sa.Column("scenario", sa.Text(), nullable=True),
        sa.Column("source_file", sa.Text(), nullable=True),
        sa.Column("source_sha256", sa.Text(), nullable=True),
        sa.Column("coefficient_set", sa.Text(), nullable=False),
        sa.Column("defects", JSONB(), server_default="[]", nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["territory_id"], ["cdt.territories.id"],
                                name=op.f("fk_fuel_balances_territory_id_territories"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fuel_balances")),
        sa.UniqueConstraint("territory_oktmo", "year", "kind", "scenario",
                            name=op.f("uq_fuel_balances_territory_oktmo_year_kind_scenario"),
                            postgresql_nulls_not_distinct=True),
        schema="cdt",
    )
    op.create_index(op.f("ix_fuel_balances_territory_id"), "fuel_balances", ["territory_id"], schema="cdt")
    op.create_table(
        "balance_cells",
        sa.Column("balance_id", sa.Integer(), nullable=False),
        sa.Column("row_code", sa.Text(), nullable=False),
        sa.Column("column_code", sa.Text(), nullable=False),
        sa.Column("value_tce", sa.Float(), nullable=True),
        sa.Column("provenance", JSONB(), nullable=False),
        sa.ForeignKeyConstraint(["balance_id"], ["cdt.fuel_balances.id"],
                                name=op.f("fk_balance_cells_balance_id_fuel_balances"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("balance_id", "row_code", "column_code", name=op.f("pk_balance_cells")),
        schema="cdt",
    )
    op.create_table(
        "form_values",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("balance_id", sa.Integer(), nullable=False),
        sa.Column("carrier", sa.Text(), nullable=False),
        sa.Column("sheet", sa.Text(), nullable=True),
        sa.Column("row_code", sa.Text(), nullable=False),
        sa.Column("form", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("value_natural", sa.Float(), nullable=True),
        sa.Column("unit", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("cell", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["balance_id"], ["cdt.fuel_balances.id"],
                                name=op.f("fk_form_values_balance_id_fuel_balances"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_values")),
        schema="cdt",
    )
    op.create_index(op.f("ix_form_values_balance_id"), "form_values", ["balance_id"], schema="cdt")


def downgrade() -> None:
    for table in ("form_values", "balance_cells", "fuel_balances", "energy_carriers"):
        op.drop_table(table, schema="cdt")
