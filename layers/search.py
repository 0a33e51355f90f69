"""The map client's search box: one query over buildings, parcels, facilities and territories.

What the text looks like decides where to look: a cadastral number (or a prefix of one) searches parcels by
prefix, an 8- or 11-digit OKTMO code finds the territory, anything else is matched word by word
(case-insensitive substrings, `%`/`_`/`\\` taken literally) against building addresses, facility names and
addresses, and territory names. Each kind is asked for `limit` rows ranked exact > prefix > substring, then
pg_trgm's word similarity; the kinds are then interleaved, so one kind with many weak matches cannot push
out the best match of another.

Access goes through `layers.access` like every other read: a layer the principal may not list is not
searched, and the layer's read rule is part of the WHERE.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, text

from layers import access, registry
from layers.access import Principal
from layers.errors import InvalidParameterValue

MIN_LENGTH, MAX_LENGTH = 2, 200
DEFAULT_LIMIT, MAX_LIMIT = 10, 50
# Enough for a full pasted address; further words only narrow the match and cost planning time.
MAX_WORDS = 12
# Rosreestr NN:NN:NNNNNN[N]:N..., or any prefix of it that has reached the first colon.
CADASTRAL_PREFIX = re.compile(r"\d{2}:(?:\d{0,2}|\d{2}:(?:\d{0,7}|\d{6,7}:\d*))")
OKTMO = re.compile(r"\d{8}(?:\d{3})?")


@dataclass(frozen=True)
class Source:
    """One searchable layer: how a row is labelled and which of its columns the text is matched against."""

    layer: str  # registry name
    kind: str
    label: str  # SQL over `t` (and the joined tables)
    match: tuple[str, ...]  # columns of `t`
    joins: str = ""
    # Column of a preferred centre point; otherwise a point on the geometry's surface (never outside it).
    centre: str | None = None
    # The column that places a row in a territory (for the `territory_oktmo` filter).
    territory_column: str = "territory_id"


BUILDINGS = Source("buildings", "building", "t.address", ("address",))
FACILITIES = Source(
    "facilities", "facility",
    "concat(coalesce(t.name || ' (' || ft.name_ru || ')', ft.name_ru), ', ' || t.address)", ("name", "address"),
    joins="JOIN cdt.facility_types ft ON ft.code = t.type_code")
TERRITORIES = Source("territories", "territory", "t.name", ("name",), centre="centre", territory_column="id")
PARCELS = Source("parcels", "parcel", "t.cadastral_number", ("cadastral_number",))
BY_TEXT = (BUILDINGS, FACILITIES, TERRITORIES)


@dataclass(frozen=True)
class Plan:
    """How to find rows of one source: the match condition, its rank and the parameters of both."""

    source: Source
    where: str
    tier: str  # 3 exact, 2 prefix (of the text or of a word in it), 1 substring
    score: str  # 0..1, pg_trgm word similarity
    params: dict


@dataclass(frozen=True)
class Hit:
    tier: int
    score: float
    result: dict


def search(conn: Connection, principal: Principal, q: str, limit: int = DEFAULT_LIMIT,
           territory_oktmo: str | None = None) -> list[dict]:
    """Up to `limit` results for the search box, best first, fairly mixed across kinds."""
    q = normalise(q)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameterValue(f"limit must be a whole number from 1 to {MAX_LIMIT}")
    scope = _territory_scope(conn, territory_oktmo) if territory_oktmo is not None else None
    found: list[list[Hit]] = []
    for plan in plans(q):
        layer = registry.get(plan.source.layer)
        if access.can_list(principal, layer):
            found.append(_run(conn, plan, layer, access.read_rule(principal, layer), scope, limit))
    return _interleave(found, limit)


def normalise(q: str) -> str:
    """The query with surrounding and repeated whitespace removed; refused when too short or too long."""
    q = " ".join(q.split())
    if len(q) < MIN_LENGTH:
        raise InvalidParameterValue(f"q must have at least {MIN_LENGTH} characters (besides spaces)")
    if len(q) > MAX_LENGTH:
        raise InvalidParameterValue(f"q must have at most {MAX_LENGTH} characters, not {len(q)}")
    if "\x00" in q:
        raise InvalidParameterValue("q must not contain NUL characters")
    return q


def plans(q: str) -> list[Plan]:
    """Where to look for `q`, by what it looks like."""
    if CADASTRAL_PREFIX.fullmatch(q):
        return [_prefix_plan(PARCELS, q)]
    if OKTMO.fullmatch(q):
        return [Plan(TERRITORIES, "t.oktmo = :s_q", "3", "1::real", {"s_q": q})]
    return [_text_plan(source, q) for source in BY_TEXT]


def like_escape(value: str) -> str:
    """`value` as a literal inside a LIKE pattern (backslash is PostgreSQL's default escape character)."""
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _text_plan(source: Source, q: str) -> Plan:
    words = list(dict.fromkeys(q.split()))[:MAX_WORDS]
    params: dict = {"s_q": q, "s_prefix": like_escape(q) + "%", "s_word_prefix": "% " + like_escape(q) + "%"}
    conditions = []
    for i, word in enumerate(words):  # every word somewhere in one of the columns
        params[f"s_w{i}"] = f"%{like_escape(word)}%"
        conditions.append("(" + " OR ".join(f"t.{c} ILIKE :s_w{i}" for c in source.match) + ")")
    tiers = [f"CASE WHEN lower(t.{c}) = lower(:s_q) THEN 3 WHEN t.{c} ILIKE :s_prefix OR t.{c} ILIKE :s_word_prefix "
             f"THEN 2 ELSE 1 END" for c in source.match]
    scores = [f"coalesce(word_similarity(:s_q, t.{c}), 0)" for c in source.match]
    return Plan(source, " AND ".join(conditions), _greatest(tiers), _greatest(scores), params)


def _prefix_plan(source: Source, q: str) -> Plan:
    (column,) = source.match
    # LIKE 'prefix%' is answered by the text_pattern_ops index (migration 0006).
    return Plan(source, f"t.{column} LIKE :s_prefix", f"CASE WHEN t.{column} = :s_q THEN 3 ELSE 2 END",
                f"similarity(:s_q, t.{column})", {"s_q": q, "s_prefix": like_escape(q) + "%"})


def _greatest(expressions: list[str]) -> str:
    return expressions[0] if len(expressions) == 1 else f"greatest({', '.join(expressions)})"


def _territory_scope(conn: Connection, oktmo: str) -> list[int]:
    """Ids of the territory with this OKTMO and all its descendants."""
    if not OKTMO.fullmatch(oktmo):
        raise InvalidParameterValue(f"territory must be an OKTMO code of 8 or 11 digits, not '{oktmo[:20]}'")
    ids = conn.execute(text("""
        WITH RECURSIVE tree AS (
            SELECT id FROM cdt.territories WHERE oktmo = :oktmo
            UNION ALL
            SELECT c.id FROM cdt.territories c JOIN tree ON c.parent_id = tree.id)
        SELECT id FROM tree"""), {"oktmo": oktmo}).scalars().all()
    if not ids:
        raise InvalidParameterValue(f"territory {oktmo} is not loaded")
    return list(ids)


def _run(conn: Connection, plan: Plan, layer: registry.Layer, rule: access.ReadRule, scope: list[int] | None,
         limit: int) -> list[Hit]:
    """The best `limit` rows of one source; the geometry work is done for those rows only (outer query)."""
    src = plan.source
    where, params = [plan.where], {**plan.params, "s_limit": limit}
    if rule.sql is not None:
        where.append(rule.sql)
        params.update(rule.params)
    if scope is not None:
        where.append(f"t.{src.territory_column} = ANY(CAST(:s_scope AS int[]))")
        params["s_scope"] = scope
    centre = f"t.{src.centre}" if src.centre else "NULL::geometry"
    sql = f"""
        SELECT m.id, m.label, m.tier, m.score, ST_XMin(m.g) AS minx, ST_YMin(m.g) AS miny, ST_XMax(m.g) AS maxx,
               ST_YMax(m.g) AS maxy, ST_X(c.p) AS lon, ST_Y(c.p) AS lat
        FROM (SELECT t.id, {src.label} AS label, {plan.tier} AS tier, {plan.score} AS score,
                     t.{layer.geometry_column} AS g, {centre} AS centre
              FROM {layer.qualified_table} t {src.joins}
              WHERE {" AND ".join(where)}
              ORDER BY tier DESC, score DESC, label, t.id
              LIMIT :s_limit) m
        CROSS JOIN LATERAL (SELECT coalesce(m.centre, ST_PointOnSurface(m.g)) AS p) c
        ORDER BY m.tier DESC, m.score DESC, m.label, m.id"""
    return [Hit(r.tier, r.score, _result(layer.name, src.kind, r)) for r in conn.execute(text(sql), params)]


def _result(collection: str, kind: str, r) -> dict:
    bbox = None if r.minx is None else [_round(v) for v in (r.minx, r.miny, r.maxx, r.maxy)]
    centre = None if r.lon is None else [_round(r.lon), _round(r.lat)]
    return {"collection": collection, "id": r.id, "label": r.label, "kind": kind, "bbox": bbox, "center": centre}


def _round(value: float) -> float:
    return round(value, 7)  # ~1 cm; more digits are noise


def _interleave(per_source: list[list[Hit]], limit: int) -> list[dict]:
    """Best tier first; within a tier the kinds take turns (the best of each, then the second of each ...),
    in order of score."""
    ranked = []
    for rows in per_source:
        rank_in_tier: dict[int, int] = {}
        for hit in rows:
            rank = rank_in_tier[hit.tier] = rank_in_tier.get(hit.tier, -1) + 1
            ranked.append(((-hit.tier, rank, -hit.score), hit.result))
    ranked.sort(key=lambda x: x[0])
    return [result for _, result in ranked[:limit]]
