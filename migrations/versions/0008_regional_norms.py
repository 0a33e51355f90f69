"""regional capacity norms (places per 1,000 residents) for Vologda Oblast

Revision ID: 0008
Revises: 0007

The figures are those CDT can cite exactly: the default service-type norms shipped by aimclub/blocksnet (the
project whose tests/data is CDT's Vologda demo). The Vologda regional standards of urban planning (РНГП
Вологодской области, постановление Правительства Вологодской области от 11.04.2016 № 338, in the wording of
29.02.2024 № 229) exist, but their per-1,000 figures could not be verified from a source at hand; each row says
so in its `source_document`, and should be replaced by the РНГП figure once it is checked. No polyclinic row:
blocksnet's polyclinic `demand` (13) does not state its unit (visits per shift or otherwise).
Rows are inserted with plain SQL so the versioning triggers stamp and record them like any other edit.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

REGION = "19000000"  # Вологодская область (OKTMO of the federal subject)
UNIT = "places per 1,000 residents"
BLOCKSNET = (
    "aimclub/blocksnet, blocksnet/config/service_types/common/default.json (commit "
    "381d3f994c1d38a4ef113caa7983557aa553e1d1), service type \"{name}\": \"demand\": {value}, applied per 1,000 "
    "residents by blocksnet.analysis.provision (demand = population / 1000 * demand; "
    "blocksnet/analysis/provision/demand/core.py). These are blocksnet's default norms, used with the Vologda "
    "test data from which CDT's demo comes; blocksnet names no regulation behind the figure. NOT verified "
    "against the Региональные нормативы градостроительного проектирования Вологодской области (утв. "
    "постановлением Правительства Вологодской области от 11.04.2016 № 338, ред. от 29.02.2024 № 229)."
)
NORMS = [("kindergarten", 61.0), ("school", 120.0)]


def upgrade() -> None:
    insert = sa.text(
        "INSERT INTO cdt.planning_norms (region_oktmo, type_code, context, demand_per_1000, demand_unit, "
        "source_document) VALUES (:region, :type_code, NULL, :value, :unit, :source)"
    )
    for type_code, value in NORMS:
        op.get_bind().execute(insert, {"region": REGION, "type_code": type_code, "value": value, "unit": UNIT,
                                       "source": BLOCKSNET.format(name=type_code, value=int(value))})


def downgrade() -> None:
    op.get_bind().execute(
        sa.text("DELETE FROM cdt.planning_norms WHERE region_oktmo = :region AND context IS NULL "
                "AND type_code = ANY(:codes) AND source_document LIKE 'aimclub/blocksnet,%'"),
        {"region": REGION, "codes": [t for t, _ in NORMS]},
    )
