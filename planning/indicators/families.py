"""Indicator families: many meaningful members generated from one definition, computed together.

access (1,908 members): for each destination (12 facility types of everyday life), travel mode (walk, bike,
    drive) and time threshold, the share and the number of residents within reach, for all residents and
    separately for multi-storey (>= 4 floors) and low-rise (1-3 floors) housing; and per destination and mode the
    residents-weighted mean, median, 90th percentile and maximum travel time and the share of residents who reach
    none. Input: the `building_access` result layer (network minutes from each residential building to the nearest
    facility of each type, on foot and by car). Cycling has no network of its own in the data: it is the walking
    route at 15 km/h instead of 4.8 km/h (access legs included).
capacity (80 members): per social facility type, facilities, capacity, facilities per 10,000 and capacity per
    1,000 residents, the regional demand norm, normative demand, provision (%) and the deficit of places.
energy_co2 (1 member): CO2 from fuel combustion of the latest balance (IPCC 2006 Tier 1, energy.co2).

Every member is a row of the registry like any other indicator (kind "family" for the Python-computed ones).
A destination with no facility in the data gives no value (NULL), not 0 %.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sqlalchemy import text
from sqlalchemy.engine import Connection

from layers.models.results import ACCESS_DESTINATIONS

MODES = ("walk", "bike", "drive")
THRESHOLDS = {"walk": tuple(range(5, 61, 5)), "bike": (5, 10, 15, 20, 25, 30), "drive": (5, 10, 15, 20, 25, 30)}
BIKE_OVER_WALK = 4.8 / 15.0  # spatial.network.WALK_SPEED_MS is 4.8 km/h; a city cyclist rides ~15 km/h
GROUPS = {"": ("все жители", "all residents"), "_ms": ("в многоэтажных домах (4+ этажа)", "in multi-storey housing"),
          "_lr": ("в малоэтажных домах (1–3 этажа)", "in low-rise housing")}
STATS = ("mean", "median", "p90", "max", "unreached")
HIST_MAX_MIN = 180  # minutes: the percentiles are read from a 1-minute histogram (±0.5 min)
SOCIAL_TYPES = ("kindergarten", "school", "college", "university", "polyclinic", "hospital", "pharmacy", "sports",
                "culture", "library")
DEST_NAMES = {"kindergarten": ("детского сада", "a kindergarten"), "school": ("школы", "a school"),
              "college": ("колледжа", "a college"), "university": ("вуза", "a university"),
              "polyclinic": ("поликлиники", "a polyclinic"), "hospital": ("больницы", "a hospital"),
              "pharmacy": ("аптеки", "a pharmacy"), "sports": ("спортивного объекта", "a sports facility"),
              "culture": ("учреждения культуры", "a cultural facility"), "library": ("библиотеки", "a library"),
              "stop": ("остановки общественного транспорта", "a public transport stop"),
              "park": ("парка", "a park")}
MODE_NAMES = {"walk": ("пешком", "on foot"), "bike": ("на велосипеде", "by bike"), "drive": ("на автомобиле", "by car")}
ACCESS_PROVENANCE = ("CDT: network travel times of the building_access layer (spatial.accessibility); thresholds "
                     "after the 15-minute city (Moreno et al., Smart Cities 4 (2021) 93-111) and СП 42.13330.2016")


@dataclass(frozen=True)
class Member:
    code: str
    name_ru: str
    name_en: str
    unit: str
    direction: str
    family: str
    kind: str = "family"
    formula: str | None = None
    source: str | None = None
    provenance: str = ACCESS_PROVENANCE
    description: str | None = None


def access_members() -> list[Member]:
    out: list[Member] = []
    for dest in ACCESS_DESTINATIONS:
        d_ru, d_en = DEST_NAMES[dest]
        for mode in MODES:
            m_ru, m_en = MODE_NAMES[mode]
            for t in THRESHOLDS[mode]:
                for suffix, (g_ru, g_en) in GROUPS.items():
                    out.append(Member(f"acc_share_{mode}_{t}_{dest}{suffix}",
                                      f"Доля жителей ({g_ru}) в пределах {t} мин {m_ru} от {d_ru}",
                                      f"Share of residents ({g_en}) within {t} min {m_en} of {d_en}", "%", "higher",
                                      "access"))
                    out.append(Member(f"acc_res_{mode}_{t}_{dest}{suffix}",
                                      f"Жители ({g_ru}) в пределах {t} мин {m_ru} от {d_ru}",
                                      f"Residents ({g_en}) within {t} min {m_en} of {d_en}", "чел.", "higher",
                                      "access"))
            for stat, ru, en in (("mean", "Среднее время", "Mean time"), ("median", "Медианное время", "Median time"),
                                 ("p90", "90-й процентиль времени", "90th percentile of time"),
                                 ("max", "Наибольшее время", "Longest time")):
                out.append(Member(f"acc_{stat}_{mode}_{dest}", f"{ru} {m_ru} до ближайшей {d_ru}",
                                  f"{en} {m_en} to the nearest {d_en.split(' ', 1)[1]} (residents-weighted)", "мин",
                                  "lower", "access"))
            out.append(Member(f"acc_unreached_{mode}_{dest}", f"Доля жителей без доступа {m_ru} до {d_ru}",
                              f"Share of residents who cannot reach {d_en} {m_en}", "%", "lower", "access"))
    return out


def capacity_members() -> list[Member]:
    """SQL measures and expressions per social facility type (computed by the engine like catalog entries)."""
    out: list[Member] = []
    prov = "CDT definition; demand norms: cdt.planning_norms (regional norms of urban planning, РНГП)"
    for t in SOCIAL_TYPES:
        ru, en = DEST_NAMES[t]
        where = f"s.type_code = '{t}'"

        def m(code: str, name_ru: str, name_en: str, unit: str, direction: str, kind: str, formula: str,
              source: str | None = None) -> None:
            out.append(Member(code, name_ru, name_en, unit, direction, "capacity", kind, formula, source, prov))

        m(f"fac_{t}_count", f"Число объектов: {ru}", f"Facilities: {en}", "ед.", "neutral", "measure",
          f"count(*) FILTER (WHERE {where})", "facilities")
        m(f"fac_{t}_capacity", f"Мощность объектов: {ru}", f"Capacity of facilities: {en}", "ед. мощности",
          "neutral", "measure", f"coalesce(sum(s.capacity) FILTER (WHERE {where}), 0)", "facilities")
        m(f"fac_{t}_per_10k", f"Объектов ({ru}) на 10 тыс. жителей", f"Facilities ({en}) per 10,000 residents",
          "ед./10 тыс. чел.", "higher", "expr", f"fac_{t}_count * 10000 / residents")
        m(f"fac_{t}_capacity_per_1000", f"Мощность ({ru}) на 1 000 жителей", f"Capacity ({en}) per 1,000 residents",
          "ед./1000 чел.", "higher", "expr", f"fac_{t}_capacity * 1000 / residents")
        m(f"fac_{t}_norm", f"Норматив потребности ({ru}) на 1 000 жителей",
          f"Demand norm ({en}) per 1,000 residents", "ед./1000 чел.", "neutral", "measure",
          f"max(s.demand_per_1000) FILTER (WHERE {where})", "norms")
        m(f"fac_{t}_demand", f"Нормативная потребность: {ru}", f"Normative demand: {en}", "ед. мощности", "neutral",
          "expr", f"residents * fac_{t}_norm / 1000")
        m(f"fac_{t}_provision", f"Обеспеченность по нормативу: {ru}", f"Provision by the norm: {en}", "%", "higher",
          "expr", f"100 * fac_{t}_capacity / fac_{t}_demand")
        m(f"fac_{t}_deficit", f"Дефицит мощности по нормативу: {ru}", f"Capacity deficit by the norm: {en}",
          "ед. мощности", "lower", "expr", f"max(fac_{t}_demand - fac_{t}_capacity, 0)")
    return out


ENERGY_MEMBERS = [Member("energy_co2_t", "Выбросы CO2 от сжигания топлива (последний баланс)",
                         "CO2 from fuel combustion (latest balance)", "т CO2", "lower", "energy_co2",
                         provenance="IPCC 2006 Guidelines Vol. 2 Ch. 1, Tier 1 (energy.co2)")]


# --- the territory map: which lowest territories lie under each territory computed ---------------------------

@dataclass(frozen=True)
class TerritoryMap:
    territory_ids: tuple[int, ...]
    leaf_ids: np.ndarray  # every territory under the computed ones (themselves included)
    pool: sp.csr_matrix  # territories x leaves: 1 where the leaf lies under (or is) the territory

    def leaf_index(self, ids: np.ndarray) -> np.ndarray:
        """Positions of `ids` among leaf_ids (-1: not under any computed territory)."""
        order = np.argsort(self.leaf_ids)
        pos = np.searchsorted(self.leaf_ids, ids, sorter=order)
        pos = np.minimum(pos, len(order) - 1)
        found = self.leaf_ids[order[pos]] == ids if len(order) else np.zeros(len(ids), bool)
        return np.where(found, order[pos], -1)


def territory_map(conn: Connection, territory_ids: list[int]) -> TerritoryMap:
    from planning.indicators.sources import TMAP
    pairs = np.array(conn.execute(text(f"{TMAP} SELECT territory_id, leaf_id FROM tmap"),
                                  {"scope": territory_ids}).all(), dtype=np.int64).reshape(-1, 2)
    leaves = np.unique(pairs[:, 1]) if len(pairs) else np.zeros(0, np.int64)
    t_pos = {t: i for i, t in enumerate(territory_ids)}
    rows = np.array([t_pos[t] for t in pairs[:, 0]], dtype=np.int64)
    cols = np.searchsorted(leaves, pairs[:, 1])
    pool = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(territory_ids), len(leaves)))
    return TerritoryMap(tuple(territory_ids), leaves, pool)


# --- the access family ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AccessInputs:
    territory_ids: np.ndarray  # per building
    residents: np.ndarray
    floors: np.ndarray  # 0: unknown
    minutes: np.ndarray  # buildings x 2 (walk, drive) x destinations, NaN: none reachable / none in the data


def load_access_inputs(conn: Connection, leaf_ids: np.ndarray) -> AccessInputs:
    """The building_access layer of the given territories. Rows travel as one packed bytea per territory: a
    million buildings arrive in a second instead of a million Python tuples."""
    rows = conn.execute(text("""
        SELECT territory_id, count(*),
               string_agg(int4send(coalesce(residents, 0)), '' ORDER BY building_id),
               string_agg(int4send(coalesce(floors, 0)), '' ORDER BY building_id),
               string_agg(minutes, '' ORDER BY building_id)
        FROM cdt.building_access WHERE territory_id = ANY(:ids) GROUP BY territory_id"""),
        {"ids": [int(i) for i in leaf_ids]}).all()
    d = len(ACCESS_DESTINATIONS)
    if not rows:
        return AccessInputs(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros((0, 2, d), np.float32))
    tids = np.concatenate([np.full(n, t, np.int64) for t, n, *_ in rows])
    residents = np.concatenate([np.frombuffer(r, ">i4") for *_, r, _f, _m in rows]).astype(float)
    floors = np.concatenate([np.frombuffer(f, ">i4") for *_, f, _m in rows])
    minutes = np.concatenate([np.frombuffer(m, "<f4") for *_, m in rows]).reshape(-1, 2, d)
    return AccessInputs(tids, residents, floors, minutes)


def pack_minutes(walk: np.ndarray, drive: np.ndarray) -> list[bytes]:
    """walk, drive: buildings x destinations minutes -> the bytea of each building (float32, little-endian)."""
    both = np.stack([walk, drive], axis=1).astype("<f4")
    return [row.tobytes() for row in both]


def _mode_minutes(inputs: AccessInputs, mode: str) -> np.ndarray:
    if mode == "walk":
        return inputs.minutes[:, 0, :]
    if mode == "bike":
        return inputs.minutes[:, 0, :] * BIKE_OVER_WALK
    return inputs.minutes[:, 1, :]


def _pooled_hist(tmap: TerritoryMap, leaf: np.ndarray, bucket: np.ndarray, nb: int, weights: np.ndarray) -> np.ndarray:
    h = np.bincount(leaf * nb + bucket, weights=weights, minlength=len(tmap.leaf_ids) * nb)
    return np.asarray(tmap.pool @ h.reshape(len(tmap.leaf_ids), nb))


def _percentile(hist: np.ndarray, q: float) -> np.ndarray:
    """Weighted percentile from 1-minute bins (the last bin is 'beyond'), linear inside the bin."""
    cum = np.cumsum(hist, axis=1)
    total = cum[:, -1]
    goal = total * q
    idx = np.array([np.searchsorted(c, g) if t > 0 else 0 for c, g, t in zip(cum, goal, total, strict=True)])
    idx = np.minimum(idx, hist.shape[1] - 1)
    before = np.where(idx > 0, cum[np.arange(len(idx)), np.maximum(idx - 1, 0)], 0.0)
    inside = hist[np.arange(len(idx)), idx]
    frac = np.where(inside > 0, (goal - before) / np.where(inside > 0, inside, 1), 0.0)
    out = idx + frac
    return np.where(total > 0, out, np.nan)


def access_values(inputs: AccessInputs, tmap: TerritoryMap) -> dict[str, np.ndarray]:
    nt = len(tmap.territory_ids)
    leaf = tmap.leaf_index(inputs.territory_ids)
    keep = (leaf >= 0) & (inputs.residents > 0)
    leaf, res, floors = leaf[keep], inputs.residents[keep], inputs.floors[keep]
    groups = {"": res, "_ms": np.where(floors >= 4, res, 0.0), "_lr": np.where((floors >= 1) & (floors <= 3), res, 0.0)}
    out: dict[str, np.ndarray] = {}
    nl = len(tmap.leaf_ids)
    totals = {g: np.asarray(tmap.pool @ np.bincount(leaf, weights=w, minlength=nl)) for g, w in groups.items()}
    for mode in MODES:
        times = _mode_minutes(inputs, mode)[keep]
        thr = np.asarray(THRESHOLDS[mode], float)
        for j, dest in enumerate(ACCESS_DESTINATIONS):
            t = times[:, j].astype(float)
            finite = np.isfinite(t)
            present = np.asarray(tmap.pool @ np.bincount(leaf, weights=finite.astype(float), minlength=nl)) > 0
            nan = np.full(nt, np.nan)
            bucket = np.where(finite, np.searchsorted(thr, np.where(finite, t, 0), side="left"), len(thr))
            for g, w in groups.items():
                within = np.cumsum(_pooled_hist(tmap, leaf, bucket, len(thr) + 1, w), axis=1)[:, :len(thr)]
                with np.errstate(all="ignore"):
                    share = 100.0 * within / totals[g][:, None]
                for k, tk in enumerate(THRESHOLDS[mode]):
                    out[f"acc_share_{mode}_{tk}_{dest}{g}"] = np.where(present & (totals[g] > 0), share[:, k], nan)
                    out[f"acc_res_{mode}_{tk}_{dest}{g}"] = np.where(present, within[:, k], nan)
            minute = np.where(finite, np.minimum(np.floor(np.where(finite, t, 0)), HIST_MAX_MIN), HIST_MAX_MIN + 1)
            hist = _pooled_hist(tmap, leaf, minute.astype(np.int64), HIST_MAX_MIN + 2, res)
            reached = hist[:, :-1]
            with np.errstate(all="ignore"):
                weighted = np.asarray(tmap.pool @ np.bincount(leaf, weights=np.where(finite, t, 0) * res,
                                                              minlength=nl))
                out[f"acc_mean_{mode}_{dest}"] = np.where(present, weighted / reached.sum(axis=1), nan)
                out[f"acc_unreached_{mode}_{dest}"] = np.where(present, 100.0 * hist[:, -1] / totals[""], nan)
            out[f"acc_median_{mode}_{dest}"] = np.where(present, _percentile(reached, 0.5), nan)
            out[f"acc_p90_{mode}_{dest}"] = np.where(present, _percentile(reached, 0.9), nan)
            out[f"acc_max_{mode}_{dest}"] = np.where(present, _pooled_max(tmap, leaf, np.where(finite, t, -np.inf)),
                                                     nan)
    return out


def _pooled_max(tmap: TerritoryMap, leaf: np.ndarray, values: np.ndarray) -> np.ndarray:
    nl = len(tmap.leaf_ids)
    leaf_max = np.full(nl, -np.inf)
    if len(leaf):
        order = np.argsort(leaf, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(leaf[order]) != 0])
        leaf_max[leaf[order][starts]] = np.maximum.reduceat(values[order], starts)
    pool = tmap.pool
    out = np.full(len(tmap.territory_ids), -np.inf)
    for i in range(len(out)):
        cols = pool.indices[pool.indptr[i]:pool.indptr[i + 1]]
        if len(cols):
            out[i] = leaf_max[cols].max()
    return np.where(np.isfinite(out), out, np.nan)


def energy_values(conn: Connection, tmap: TerritoryMap, year: int) -> dict[str, np.ndarray]:
    """CO2 of the latest actual balance (up to `year`) of each territory that has one (no pooling: a balance
    belongs to its own territory, a region's is not the sum of its municipalities')."""
    from energy import co2
    from energy.store import read_balance
    rows = conn.execute(text("""
        SELECT DISTINCT ON (territory_id) territory_id, id FROM cdt.fuel_balances
        WHERE kind = 'actual' AND scenario IS NULL AND territory_id = ANY(:ids) AND year <= :year
        ORDER BY territory_id, year DESC"""), {"ids": list(tmap.territory_ids), "year": year}).all()
    out = np.full(len(tmap.territory_ids), np.nan)
    position = {t: i for i, t in enumerate(tmap.territory_ids)}
    for tid, balance_id in rows:
        out[position[tid]] = co2.total_co2_t(read_balance(conn, balance_id))
    return {"energy_co2_t": out}
