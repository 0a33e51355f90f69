"""The one access point: who may read and edit which features of which layer.

Every path (OGC items and features, tiles, history, edits, later processes, exports and the bot) asks
here. Reads get an SQL condition over the layer's rows (alias `t`), edits a check of the old and new
geometry against the user's territories. Classes of layers:

- public: everybody, anonymous included.
- internal: every signed-in official or analyst (federal, regional, municipal, agency, analyst), whatever
  the territory; an enterprise sees only its own objects; the public nothing.
- restricted: only within the territories of the user's grants (a grant covers the territory and all its
  descendants in the OKTMO hierarchy; federal covers all); agency staff only on layers of their sector;
  an enterprise only its own objects; the public nothing.

Editing: the role must be among the layer's editing roles (agency staff: of the layer's sector), and
both the old and the new geometry must lie within the user's territories (federal: anywhere; an
enterprise may place its own objects anywhere and edit only those).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from sqlalchemy import Connection, text

from layers.errors import CDTError, Forbidden, NotFound
from layers.registry import Layer

ROLES = ("federal", "regional", "municipal", "agency", "analyst", "enterprise", "citizen")
OFFICIALS = ("federal", "regional", "municipal", "agency", "analyst")
SCOPED = ("regional", "municipal", "agency", "analyst")


class Unauthorized(CDTError):
    def __init__(self, detail: str, **context):
        super().__init__(detail, 401, "Unauthorized", context)


@dataclass(frozen=True)
class Grant:
    role: str
    territory_id: int | None = None  # None: all territories (federal)
    sector: str | None = None  # agency staff: energy, education, health ...


@dataclass(frozen=True)
class Principal:
    login: str | None = None
    user_id: int | None = None
    grants: tuple[Grant, ...] = ()
    # Territory ids each grant covers, descendants included (filled by `resolve_scopes`).
    scopes: dict[Grant, tuple[int, ...]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def anonymous(self) -> bool:
        return self.login is None

    @property
    def actor(self) -> str:
        return f"user:{self.login}" if self.login else "anonymous"

    @property
    def roles(self) -> set[str]:
        return {g.role for g in self.grants} or {"citizen"}

    def describe(self) -> str:
        return self.login or "anonymous"


ANONYMOUS = Principal()


def resolve_scopes(conn: Connection, principal: Principal) -> Principal:
    """The principal with each grant's territory expanded to its descendants (one query)."""
    roots = sorted({g.territory_id for g in principal.grants if g.territory_id is not None})
    if not roots:
        return principal
    rows = conn.execute(text("""
        WITH RECURSIVE tree AS (
            SELECT id, id AS root FROM cdt.territories WHERE id = ANY(CAST(:roots AS int[]))
            UNION ALL
            SELECT c.id, tree.root FROM cdt.territories c JOIN tree ON c.parent_id = tree.id)
        SELECT root, array_agg(id ORDER BY id) AS ids FROM tree GROUP BY root"""), {"roots": roots}).all()
    by_root = {r.root: tuple(r.ids) for r in rows}
    scopes = {g: by_root.get(g.territory_id, ()) for g in principal.grants if g.territory_id is not None}
    return Principal(principal.login, principal.user_id, principal.grants, scopes)


# --- reading ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReadRule:
    """How a principal may read a layer: everything, some rows (an SQL condition over `t`), or nothing."""

    sql: str | None  # None: every row
    params: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def unfiltered(self) -> bool:
        return self.sql is None

    def key(self) -> str:
        """Who shares this view of the layer (the tile cache keys on it)."""
        if self.sql is None:
            return "all"
        return hashlib.md5(f"{self.sql}|{sorted(self.params.items())}".encode()).hexdigest()[:16]


def _territory_ids(principal: Principal, grants: list[Grant]) -> list[int]:
    return sorted({i for g in grants for i in principal.scopes.get(g, ())})


def read_rule(principal: Principal, layer: Layer) -> ReadRule:
    """What of `layer` the principal may read; raises Unauthorized/Forbidden when nothing."""
    if layer.access == "public":
        return ReadRule(None)
    roles = principal.roles
    if "federal" in roles:
        return ReadRule(None)
    own = ReadRule("t.created_by = :acc_actor", {"acc_actor": principal.actor}) if "enterprise" in roles else None
    if layer.access == "internal":
        if roles & set(OFFICIALS):
            return ReadRule(None)
    else:  # restricted
        grants = [g for g in principal.grants if g.role in SCOPED and
                  (g.role != "agency" or (layer.sector is not None and g.sector == layer.sector))]
        ids = _territory_ids(principal, grants)
        if ids:
            scope = ReadRule("t.territory_id = ANY(CAST(:acc_scope AS int[]))", {"acc_scope": ids})
            if own:
                return ReadRule(f"({scope.sql} OR {own.sql})", {**scope.params, **own.params})
            return scope
    if own:
        return own
    if principal.anonymous:
        raise Unauthorized(f"collection {layer.name} is {layer.access}: sign in (session or Bearer token)")
    raise Forbidden(f"your grants do not include collection {layer.name} ({layer.access})")


def can_list(principal: Principal, layer: Layer) -> bool:
    """Whether the collection is shown to the principal at all (in /collections, tiles, the client)."""
    try:
        read_rule(principal, layer)
    except (Unauthorized, Forbidden):
        return False
    return True


def visible(conn: Connection, principal: Principal, layer: Layer, fid: int) -> None:
    """NotFound unless the feature exists and the principal may read it (no hint that it exists)."""
    rule = read_rule(principal, layer)
    where = f" AND {rule.sql}" if rule.sql else ""
    if conn.execute(text(f"SELECT 1 FROM {layer.qualified_table} t WHERE t.id = :acc_fid{where}"),
                    {"acc_fid": fid, **rule.params}).first() is None:
        raise NotFound(f"no feature '{fid}' in collection {layer.name}")


# --- editing ------------------------------------------------------------------------------------------------
def edit_grants(principal: Principal, layer: Layer) -> list[Grant]:
    """The grants that let the principal edit the layer at all (Forbidden/Unauthorized when none)."""
    if principal.anonymous:
        raise Unauthorized(f"editing {layer.name} needs a signed-in user")
    grants = [g for g in principal.grants if g.role in layer.editing_roles and
              (g.role != "agency" or (layer.sector is not None and g.sector == layer.sector))]
    if not grants:
        raise Forbidden(f"your role may not edit {layer.name} (editing roles: {', '.join(layer.editing_roles)})")
    return grants


def check_edit(conn: Connection, principal: Principal, layer: Layer, *, old_fid: int | None = None,
               new_geometry: tuple[str, dict] | None = None) -> None:
    """Raise unless the principal may change feature `old_fid` (its current geometry) and/or write
    `new_geometry` (an SQL expression in storage CRS with its parameters)."""
    grants = edit_grants(principal, layer)
    if any(g.role == "federal" for g in grants):
        return
    table, geom = layer.qualified_table, layer.geometry_column
    scoped = [g for g in grants if g.role in SCOPED]
    enterprise = any(g.role == "enterprise" for g in grants)
    ids = _territory_ids(principal, scoped)
    area = ("(SELECT ST_Union(tt.boundary) FROM cdt.territories tt WHERE tt.boundary IS NOT NULL "
            "AND tt.id = ANY(CAST(:acc_scope AS int[])))")
    own = False
    if old_fid is not None:
        row = conn.execute(text(f"SELECT t.created_by = :acc_actor AS own, "
                                f"coalesce(ST_CoveredBy(t.{geom}, {area}), false) AS inside "
                                f"FROM {table} t WHERE t.id = :acc_fid"),
                           {"acc_fid": old_fid, "acc_actor": principal.actor, "acc_scope": ids}).first()
        if row is None:
            raise NotFound(f"no feature '{old_fid}' in collection {layer.name}")
        own = enterprise and bool(row.own)
        if not (own or (ids and row.inside)):
            raise Forbidden(f"feature {old_fid} of {layer.name} is not yours" if enterprise and not ids
                            else f"feature {old_fid} of {layer.name} lies outside your territories")
    if new_geometry is None or own or (enterprise and old_fid is None):
        return  # an enterprise places and moves its own objects anywhere
    sql, params = new_geometry
    inside = ids and conn.execute(text(f"SELECT coalesce(ST_CoveredBy(g, {area}), false) FROM (SELECT {sql} AS g) s"),
                                  {**params, "acc_scope": ids}).scalar()
    if not inside:
        raise Forbidden(f"the geometry leaves your territories; {layer.name} may be edited only within them")
