"""indicators, values, programs, goals, scenarios, building access

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import geoalchemy2
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('indicators',
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name_ru', sa.Text(), nullable=False),
    sa.Column('name_en', sa.Text(), nullable=False),
    sa.Column('unit', sa.Text(), nullable=False),
    sa.Column('kind', sa.Text(), nullable=False),
    sa.Column('source_layer', sa.Text(), nullable=True),
    sa.Column('formula', sa.Text(), nullable=True),
    sa.Column('family', sa.Text(), nullable=True),
    sa.Column('direction', sa.Text(), server_default='neutral', nullable=False),
    sa.Column('aggregation', sa.Text(), server_default='recompute', nullable=False),
    sa.Column('periodicity', sa.Text(), server_default='year', nullable=False),
    sa.Column('provenance', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('builtin', sa.Boolean(), server_default='false', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.Text(), nullable=True),
    sa.CheckConstraint("aggregation IN ('sum', 'mean_pop', 'recompute', 'none')", name=op.f('ck_indicators_aggregation')),
    sa.CheckConstraint("code ~ '^[a-z][a-z0-9_]{0,79}$'", name=op.f('ck_indicators_code_format')),
    sa.CheckConstraint("direction IN ('higher', 'lower', 'neutral')", name=op.f('ck_indicators_direction')),
    sa.CheckConstraint("kind IN ('measure', 'expr', 'family', 'series')", name=op.f('ck_indicators_kind')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_indicators')),
    schema='cdt'
    )
    op.create_index(op.f('ix_indicators_family'), 'indicators', ['family'], unique=False, schema='cdt')
    op.create_table('programs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('territory_id', sa.Integer(), nullable=True),
    sa.Column('start_year', sa.Integer(), nullable=True),
    sa.Column('end_year', sa.Integer(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['territory_id'], ['cdt.territories.id'], name=op.f('fk_programs_territory_id_territories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_programs')),
    sa.UniqueConstraint('code', name=op.f('uq_programs_code')),
    schema='cdt'
    )
    op.create_index(op.f('ix_programs_territory_id'), 'programs', ['territory_id'], unique=False, schema='cdt')
    op.create_table('scenarios',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('territory_id', sa.Integer(), nullable=True),
    sa.Column('parameters', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['territory_id'], ['cdt.territories.id'], name=op.f('fk_scenarios_territory_id_territories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scenarios')),
    sa.UniqueConstraint('name', name=op.f('uq_scenarios_name')),
    schema='cdt'
    )
    op.create_index(op.f('ix_scenarios_territory_id'), 'scenarios', ['territory_id'], unique=False, schema='cdt')
    op.create_table('building_access',
    sa.Column('building_id', sa.Integer(), nullable=False),
    sa.Column('territory_id', sa.Integer(), nullable=True),
    sa.Column('residents', sa.Integer(), nullable=True),
    sa.Column('floors', sa.Integer(), nullable=True),
    sa.Column('minutes', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['building_id'], ['cdt.buildings.id'], name=op.f('fk_building_access_building_id_buildings'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['territory_id'], ['cdt.territories.id'], name=op.f('fk_building_access_territory_id_territories')),
    sa.PrimaryKeyConstraint('building_id', name=op.f('pk_building_access')),
    schema='cdt'
    )
    op.create_index(op.f('ix_building_access_territory_id'), 'building_access', ['territory_id'], unique=False, schema='cdt')
    op.create_table('goals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('program_id', sa.Integer(), nullable=True),
    sa.Column('parent_id', sa.Integer(), nullable=True),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('territory_id', sa.Integer(), nullable=False),
    sa.Column('indicator_code', sa.Text(), nullable=True),
    sa.Column('baseline_value', sa.Float(), nullable=True),
    sa.Column('baseline_year', sa.Integer(), nullable=True),
    sa.Column('target_value', sa.Float(), nullable=True),
    sa.Column('target_year', sa.Integer(), nullable=True),
    sa.Column('weight', sa.Float(), server_default='1', nullable=False),
    sa.Column('split_rule', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['indicator_code'], ['cdt.indicators.code'], name=op.f('fk_goals_indicator_code_indicators'), onupdate='CASCADE', ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['parent_id'], ['cdt.goals.id'], name=op.f('fk_goals_parent_id_goals'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['program_id'], ['cdt.programs.id'], name=op.f('fk_goals_program_id_programs'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['territory_id'], ['cdt.territories.id'], name=op.f('fk_goals_territory_id_territories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_goals')),
    schema='cdt'
    )
    op.create_index(op.f('ix_goals_indicator_code'), 'goals', ['indicator_code'], unique=False, schema='cdt')
    op.create_index(op.f('ix_goals_parent_id'), 'goals', ['parent_id'], unique=False, schema='cdt')
    op.create_index(op.f('ix_goals_program_id'), 'goals', ['program_id'], unique=False, schema='cdt')
    op.create_index(op.f('ix_goals_territory_id'), 'goals', ['territory_id'], unique=False, schema='cdt')
    op.create_table('indicator_values',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('indicator_code', sa.Text(), nullable=False),
    sa.Column('territory_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.Date(), nullable=False),
    sa.Column('value_type', sa.Text(), server_default='actual', nullable=False),
    sa.Column('scenario_id', sa.Integer(), nullable=True),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.CheckConstraint("value_type IN ('actual', 'forecast', 'target')", name=op.f('ck_indicator_values_value_type')),
    sa.ForeignKeyConstraint(['indicator_code'], ['cdt.indicators.code'], name=op.f('fk_indicator_values_indicator_code_indicators'), onupdate='CASCADE', ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['scenario_id'], ['cdt.scenarios.id'], name=op.f('fk_indicator_values_scenario_id_scenarios'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['territory_id'], ['cdt.territories.id'], name=op.f('fk_indicator_values_territory_id_territories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_indicator_values')),
    sa.UniqueConstraint('indicator_code', 'territory_id', 'period', 'value_type', 'scenario_id', name=op.f('uq_indicator_values_indicator_code_territory_id_period_value_type_scenario_id'), postgresql_nulls_not_distinct=True),
    schema='cdt'
    )
    op.create_index(op.f('ix_indicator_values_scenario_id'), 'indicator_values', ['scenario_id'], unique=False, schema='cdt')
    op.create_index('ix_indicator_values_territory_id_period', 'indicator_values', ['territory_id', 'period'], unique=False, schema='cdt')
    op.create_table('scenario_edits',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scenario_id', sa.Integer(), nullable=False),
    sa.Column('collection', sa.Text(), nullable=False),
    sa.Column('feature_id', sa.Integer(), nullable=True),
    sa.Column('operation', sa.Text(), nullable=False),
    sa.Column('properties', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('geom', geoalchemy2.types.Geometry(srid=4326, dimension=2, spatial_index=False, from_text='ST_GeomFromEWKT', name='geometry'), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('created_by', sa.Text(), nullable=True),
    sa.CheckConstraint("operation = 'insert' OR feature_id IS NOT NULL", name=op.f('ck_scenario_edits_feature_id')),
    sa.CheckConstraint("operation IN ('insert', 'update', 'delete')", name=op.f('ck_scenario_edits_operation')),
    sa.ForeignKeyConstraint(['scenario_id'], ['cdt.scenarios.id'], name=op.f('fk_scenario_edits_scenario_id_scenarios'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scenario_edits')),
    schema='cdt'
    )
    op.create_index(op.f('ix_scenario_edits_scenario_id'), 'scenario_edits', ['scenario_id'], unique=False, schema='cdt')


def downgrade() -> None:
    op.drop_index(op.f('ix_scenario_edits_scenario_id'), table_name='scenario_edits', schema='cdt')
    op.drop_table('scenario_edits', schema='cdt')
    op.drop_index('ix_indicator_values_territory_id_period', table_name='indicator_values', schema='cdt')
    op.drop_index(op.f('ix_indicator_values_scenario_id'), table_name='indicator_values', schema='cdt')
    op.drop_table('indicator_values', schema='cdt')
    op.drop_index(op.f('ix_goals_territory_id'), table_name='goals', schema='cdt')
    op.drop_index(op.f('ix_goals_program_id'), table_name='goals', schema='cdt')
    op.drop_index(op.f('ix_goals_parent_id'), table_name='goals', schema='cdt')
    op.drop_index(op.f('ix_goals_indicator_code'), table_name='goals', schema='cdt')
    op.drop_table('goals', schema='cdt')
    op.drop_index(op.f('ix_building_access_territory_id'), table_name='building_access', schema='cdt')
    op.drop_table('building_access', schema='cdt')
    op.drop_index(op.f('ix_scenarios_territory_id'), table_name='scenarios', schema='cdt')
    op.drop_table('scenarios', schema='cdt')
    op.drop_index(op.f('ix_programs_territory_id'), table_name='programs', schema='cdt')
    op.drop_table('programs', schema='cdt')
    op.drop_index(op.f('ix_indicators_family'), table_name='indicators', schema='cdt')
    op.drop_table('indicators', schema='cdt')
