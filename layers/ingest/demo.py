"""The demo city: Vologda (buildings, facilities, streets, water, railways, boundary) plus the
Ekaterinburg and Novocheboksarsk cadastral extracts as a second and third territory.

Every step is skipped when the same file was already loaded with the same options,
so running the platform again is fast and changes nothing.

Demo accounts, one per role (password `demo-<login>`, for the demo only), are created when missing; an
existing account is left exactly as it is (its password and grants included).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
from sqlalchemy import Engine, text

from layers import accounts
from layers.ingest.report import LoadReport
from layers.ingest.service import load_file, load_kpt
from layers.ingest.territories import load_territories

VOLOGDA = "19701000"
EKATERINBURG = "65701000"
NOVOCHEBOKSARSK = "97710000"

BUILDING_FIELDS = {"floors": "number_of_floors", "living_area_m2": "living_area", "floor_area_m2": "build_floor_area",
                   "residents": "population", "is_living": "is_living"}
FACILITY_FIELDS = {"name": "name", "category": "category", "address": "address", "capacity": "capacity"}
VOLOGDA_OBLAST = "19000000"
# login -> (display name, organisation, role, territory OKTMO, sector); citizens are anonymous.
DEMO_ACCOUNTS = {
    "minister": ("Федеральный министр (демо)", "Минстрой России", "federal", None, None),
    "vologda_region": ("Правительство Вологодской области (демо)", "Правительство Вологодской области",
                       "regional", VOLOGDA_OBLAST, None),
    "vologda_city": ("Администрация г. Вологды (демо)", "Администрация г. Вологды", "municipal", VOLOGDA, None),
    "ekb_city": ("Администрация г. Екатеринбурга (демо)", "Администрация г. Екатеринбурга", "municipal",
                 EKATERINBURG, None),
    "vologda_energy": ("Департамент энергетики (демо)", "Департамент ТЭК Вологодской области", "agency",
                       VOLOGDA_OBLAST, "energy"),
    "analyst": ("Аналитик (демо)", "Аналитический центр", "analyst", VOLOGDA_OBLAST, None),
    "enterprise": ("Предприятие (демо)", "ООО «Демо»", "enterprise", None, None),
}


def demo_password(login: str) -> str:
    return f"demo-{login}"


def load_demo(engine: Engine, data: Path, actor: str, progress: bool = False,
              echo: Callable[[str], None] = print) -> list[LoadReport]:
    reports: list[LoadReport] = []

    def step(report: LoadReport) -> None:
        reports.append(report)
        echo(report.summary())

    vologda = data / "vologda"
    step(load_territories(engine, data / "russia" / "cities.csv", [VOLOGDA, EKATERINBURG, NOVOCHEBOKSARSK],
                          actor=actor, boundaries={VOLOGDA: vologda / "boundaries.parquet"}))
    step(load_file(engine, vologda / "buildings.parquet", "buildings", actor=actor, source="vologda/buildings",
                   mapping=BUILDING_FIELDS,
                   territory=VOLOGDA, progress=progress, skip_if_loaded=True))
    for type_code, file in (("school", "school.parquet"), ("kindergarten", "kindergarten.parquet")):
        report = load_file(engine, vologda / file, "facilities", actor=actor, source=f"vologda/{type_code}",
                           mapping=FACILITY_FIELDS, constants={"type_code": type_code, "capacity_unit": "places"},
                           territory=VOLOGDA, progress=progress, skip_if_loaded=True,
                           inspect=_note_multi_category if type_code == "kindergarten" else None)
        step(report)
    step(load_file(engine, vologda / "roads.parquet", "street_edges", actor=actor, source="vologda/roads",
                   progress=progress, skip_if_loaded=True))
    step(load_file(engine, vologda / "water.parquet", "water", actor=actor, source="vologda/water",
                   skip_if_loaded=True))
    step(load_file(engine, vologda / "railways.parquet", "railways", actor=actor, source="vologda/railways",
                   skip_if_loaded=True))
    cadastre = data / "cadastre"
    step(load_kpt(engine, [cadastre / "kpt10_66-41-0302032.xml"], actor=actor, territory=EKATERINBURG,
                  skip_if_loaded=True))
    step(load_kpt(engine, sorted(cadastre.glob("kpt10_21-02-*.xml")), actor=actor, territory=NOVOCHEBOKSARSK,
                  skip_if_loaded=True))
    from planning.indicators.service import install
    echo(f"indicator registry: {install(engine, actor)['installed']:,} built-in definitions")
    created = load_demo_accounts(engine, actor)
    echo(f"demo accounts: {', '.join(created)} created (password demo-<login>)" if created
         else "demo accounts: present, unchanged")
    return reports


def load_demo_accounts(engine: Engine, actor: str) -> list[str]:
    """Create the demo accounts that do not exist yet (all or none); returns their logins."""
    created = []
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(7303, 0)"))  # two loads at once create each user once
        existing = set(conn.execute(text("SELECT login FROM cdt.users WHERE login = ANY(:l)"),
                                    {"l": list(DEMO_ACCOUNTS)}).scalars())
        for login, (name, organisation, role, oktmo, sector) in DEMO_ACCOUNTS.items():
            if login in existing:
                continue
            accounts.create_user(conn, login, demo_password(login), name, organisation)
            accounts.grant(conn, login, role, oktmo, sector)
            created.append(login)
        if created:
            accounts.audit(conn, actor, "users.demo", "ok", detail={"created": created})
    return created


def _note_multi_category(gdf: gpd.GeoDataFrame, report: LoadReport) -> None:
    """A private kindergarten listed as 'also a school' stays one kindergarten: the source gives
    one capacity for both, so no school capacity is invented; the report says so."""
    for idx, row in gdf[gdf["category"].str.contains("Школы", na=False)].iterrows():
        report.warn(idx, f"'{row['name']}' is also listed as a school ({row['category']}); "
                         "loaded once, as a kindergarten")
