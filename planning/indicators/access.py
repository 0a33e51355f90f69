"""Who may see an indicator: whoever may read every layer it is computed from.

An aggregate still tells about its rows (the length and load of the heat network of a town, the planned
facilities of a draft master plan), so an indicator over a restricted layer is as restricted as the layer, and an
expression over such an indicator inherits it. Imported series and energy balances are public statistics.
The layers' own read rules decide (layers.access.read_rule), so there is one access point, not a second policy:
a rule that reads every row lets every territory's value be seen; a rule scoped to territories lets only the
values of those territories be seen (a parent's value also counts rows outside the scope, so it is not); a rule
that reads only the principal's own rows (enterprises) lets no aggregate be seen.
"""

from __future__ import annotations

from collections.abc import Mapping

from layers import registry
from layers.access import Principal, Unauthorized, read_rule
from layers.errors import Forbidden, NotFound
from planning.indicators.catalog import Definition

Scope = frozenset[int] | None  # None: every territory

# Source (planning.indicators.sources) -> the registry layers it reads; None: public statistics.
SOURCE_LAYERS: dict[str, tuple[str, ...]] = {
    "territories": ("territories",), "buildings": ("buildings",), "facilities": ("facilities",),
    "planned_facilities": ("planned_facilities",), "norms": ("planning_norms",), "parcels": ("parcels",),
    "functional_zones": ("functional_zones",), "zoning_zones": ("zoning_zones",), "streets": ("street_edges",),
    "water": ("water",), "railways": ("railways",), "utility_lines": ("utility_lines",),
    "utility_nodes": ("utility_nodes",), "walk_access": ("walk_access",),
    "service_provision": ("service_provision",), "energy": (),
}
FAMILY_LAYERS: dict[str, tuple[str, ...]] = {"access": ("buildings", "facilities", "street_edges"),
                                             "energy_co2": ()}


def _layers(d: Definition) -> tuple[str, ...]:
    if d.kind == "measure":
        return SOURCE_LAYERS.get(d.source_layer or "", ())
    if d.kind == "family":
        return FAMILY_LAYERS.get(d.family or "", ())
    return ()


def _layer_scope(principal: Principal, name: str) -> Scope:
    try:
        rule = read_rule(principal, registry.get(name))
    except (Unauthorized, Forbidden):
        return frozenset()
    if rule.unfiltered:
        return None
    return frozenset(rule.params.get("acc_scope", ()))


def _meet(a: Scope, b: Scope) -> Scope:
    return b if a is None else a if b is None else a & b


def scopes(principal: Principal, reg: Mapping[str, Definition]) -> dict[str, Scope]:
    """For each code, the territories whose value the principal may see (None: all)."""
    layer_scope = {n: _layer_scope(principal, n) for n in {n for d in reg.values() for n in _layers(d)}}
    out: dict[str, Scope] = {}
    for c, d in reg.items():
        sc: Scope = None
        for n in _layers(d):
            sc = _meet(sc, layer_scope[n])
        out[c] = sc
    changed = True
    while changed:  # an expression inherits the scopes of what it is computed from
        changed = False
        for c, d in reg.items():
            if d.kind != "expr":
                continue
            sc = out[c]
            for dep in d.depends_on():
                sc = _meet(sc, out.get(dep))
            if sc != out[c]:
                out[c], changed = sc, True
    return out


def hidden(principal: Principal, reg: Mapping[str, Definition]) -> set[str]:
    """Codes the principal may see in no territory."""
    return {c for c, sc in scopes(principal, reg).items() if sc is not None and not sc}


def allowed(principal: Principal, code: str, reg: Mapping[str, Definition]) -> Scope:
    return scopes(principal, reg)[code]


def require_readable(principal: Principal, code: str, reg: Mapping[str, Definition],
                     territory_id: int | None = None) -> Scope:
    """Refuse a code (or its value in one territory) the principal may not see; returns its scope."""
    if code not in reg:
        raise NotFound(f"unknown indicator '{code}'")
    sc = allowed(principal, code, reg)
    if sc is not None and (not sc or (territory_id is not None and territory_id not in sc)):
        where = "" if territory_id is None or not sc else " in this territory"
        if principal.anonymous:
            raise Unauthorized(f"indicator '{code}' is computed from restricted layers: sign in")
        raise Forbidden(f"indicator '{code}' is computed from layers your account may not read{where}")
    return sc
